"""A client connects to a QuickBooks connector through our OAuth and the hop to Intuit (the
emulator), then calls tools that return the sample company's data."""

import anyio
import httpx
import pytest
from django.db import connection as db

from config import crypto
from tests.support.flow import OAuthClient, pkce_pair
from tests.support.mcp_client import MemoryStorage, connected, oauth_provider
from tests.support.oauth import Browser
from upstream.models import UpstreamConnection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def quickbooks(live_url, acme, qbo_emulator, settings):
    """The platform points at the emulator; acme gets a per-user and a shared QuickBooks
    connector."""
    from tenants.services import connector_create

    callback = f"{live_url}/upstream/quickbooks/callback"
    qbo_emulator.emulator.configure(redirect_uris=[callback], auto_approve=True)
    qbo_emulator.point_platform_at(settings)
    return {
        "emulator": qbo_emulator,
        "per_user": connector_create(tenant=acme["tenant"], kind="quickbooks", slug="qbo"),
        "shared": connector_create(
            tenant=acme["tenant"], kind="quickbooks", slug="qbo-shared", mode="shared"
        ),
    }


def _browser(user, password, emulator):
    return Browser(user, password, also_visits=(emulator.base_url,))


def _connect_and_call(url, browser):
    async def scenario():
        async with connected(url, oauth_provider(url, browser, MemoryStorage())) as client:
            info = await client.call_tool("company_info", {})
            customers = await client.call_tool(
                "query", {"query": "SELECT * FROM Customer ORDERBY DisplayName", "max_results": 5}
            )
            return info, customers

    return anyio.run(scenario)


def test_per_user_connect_goes_through_intuit_and_tools_return_company_data(quickbooks):
    emulator = quickbooks["emulator"]
    browser = _browser("bob", "bob-pass-123", emulator)
    info, customers = _connect_and_call(quickbooks["per_user"].url, browser)

    assert not info.is_error, info.content
    assert info.structured_content["CompanyName"]
    assert not customers.is_error, customers.content
    rows = customers.structured_content["rows"]
    assert 0 < len(rows) <= 5
    assert rows == sorted(rows, key=lambda row: row["DisplayName"])

    # The browser went to Intuit and back before the client got its code.
    hosts = [str(page.url) for page in browser.pages]
    assert any(url.startswith(emulator.base_url) for url in hosts)
    connection = UpstreamConnection.objects.get(connector=quickbooks["per_user"])
    assert connection.user.username == "bob"
    assert connection.status == "active"
    assert connection.external_account_id
    assert connection.external_account_name == info.structured_content["CompanyName"]
    # The raw columns hold ciphertext only.
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT access_token_encrypted, refresh_token_encrypted "
            "FROM upstream_upstreamconnection"
        )
        stored = " ".join(cursor.fetchone())
    for column in ("access_token_encrypted", "refresh_token_encrypted"):
        plaintext = crypto.decrypt(getattr(connection, column))
        assert len(plaintext) > 20 and plaintext not in stored


def test_shared_mode_uses_the_company_an_admin_connected(quickbooks, live_url):
    emulator = quickbooks["emulator"]
    connector = quickbooks["shared"]

    # A member before any admin connected the company: a clear page, no code.
    client = OAuthClient.register(live_url)
    early = _browser("bob", "bob-pass-123", emulator)
    _, challenge = pkce_pair()
    with pytest.raises(AssertionError, match="unexpected page 409"):
        early.authorize(client.authorize_url(challenge, resource=connector.url))
    assert "has not been connected yet" in early.pages[-1].text

    # The admin connects the company once from the dashboard.
    admin = _browser("alice", "alice-pass-123", emulator)
    admin.sign_in(live_url)
    done = admin.submit(f"{live_url}/dashboard/connectors/{connector.pk}/connect")
    assert done.status_code == 200, done.text
    assert "connected" in done.text
    shared = UpstreamConnection.objects.get(connector=connector)
    assert shared.user is None and shared.connected_by.username == "alice"

    # Now bob's client connects without visiting Intuit, and sees the company's data.
    bob = _browser("bob", "bob-pass-123", emulator)
    info, _ = _connect_and_call(connector.url, bob)
    assert not info.is_error
    assert not any(str(p.url).startswith(emulator.base_url) for p in bob.pages)


def test_only_tenant_admins_connect_the_shared_company(quickbooks, live_url):
    url = f"{live_url}/dashboard/connectors/{quickbooks['shared'].pk}/connect"
    assert httpx.get(url).status_code == 302  # anonymous: to sign-in
    for user, password in (("bob", "bob-pass-123"), ("eve", "eve-pass-123")):
        browser = _browser(user, password, quickbooks["emulator"])
        browser.sign_in(live_url)
        assert browser.http.get(url).status_code == 404
