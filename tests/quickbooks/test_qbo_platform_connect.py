"""A client connects to a QuickBooks connector through our OAuth and the hop to Intuit (the
emulator), then calls tools that return the sample company's data."""

import re

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

ALLOW_DISABLED = re.compile(r'<button[^>]*value="yes"[^>]*\bdisabled\b[^>]*>Allow</button>')


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

    # A member before any admin connected the company: warned on the consent page, before
    # Allow (which is disabled), and the client is told so (never a code, never left waiting).
    client = OAuthClient.register(live_url)
    early = _browser("bob", "bob-pass-123", emulator)
    _, challenge = pkce_pair()
    told = early.authorize(client.authorize_url(challenge, resource=connector.url))
    assert told["_redirect"] == client.redirect_uri
    assert told["error"] == "temporarily_unavailable"
    assert (told["state"], told["iss"]) == ("st4te", live_url)
    assert "has not been connected yet" in told["error_description"]
    assert "code" not in told
    consent = next(page for page in early.pages if 'name="pending"' in page.text)
    assert "cannot be used right now" in consent.text
    assert "has not been connected yet" in consent.text
    assert ALLOW_DISABLED.search(consent.text)

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


def _consent_page(browser: Browser, url: str) -> tuple[httpx.Response, str]:
    """Sign in and open the consent page of ``url`` (an /authorize URL); its pending id."""
    page = browser.http.get(url, follow_redirects=True)
    if 'name="password"' in page.text:
        browser.sign_in(url.split("/authorize")[0])
        page = browser.http.get(url)
    pending = re.search(r'name="pending" value="([^"]+)"', page.text)
    assert pending, page.text[:500]
    return page, pending[1]


def test_a_lost_shared_account_is_said_before_allow_even_when_consent_is_remembered(
    quickbooks, live_url
):
    """A member who consented before is not silently sent through: the consent page comes
    back with the warning, and *Return to the client* tells it temporarily_unavailable."""
    emulator = quickbooks["emulator"]
    connector = quickbooks["shared"]
    shared, _ = emulator.store_connection(connector=connector)
    client = OAuthClient.register(live_url)
    bob = _browser("bob", "bob-pass-123", emulator)
    _, challenge = pkce_pair()
    first = bob.authorize(client.authorize_url(challenge, resource=connector.url))
    assert "code" in first, first  # consented and connected: the consent is remembered now
    consent_pages = sum('name="pending"' in page.text for page in bob.pages)
    again = bob.authorize(client.authorize_url(pkce_pair()[1], resource=connector.url))
    assert "code" in again
    assert sum('name="pending"' in page.text for page in bob.pages) == consent_pages

    # The company's admin disconnects the app at Intuit; the platform learns it.
    UpstreamConnection.objects.filter(pk=shared.pk).update(status="needs_reauth")
    url = client.authorize_url(challenge, resource=connector.url, state="after-loss")
    page, pending = _consent_page(bob, url)
    assert "needs to be reconnected" in page.text and ALLOW_DISABLED.search(page.text)
    assert "connect it now" not in page.text  # bob is a member, not an admin
    back = bob.http.post(
        f"{live_url}/authorize",
        data={
            "csrfmiddlewaretoken": re.search(r'csrfmiddlewaretoken" value="([^"]+)"', page.text)[1],
            "pending": pending,
            "allow": "unavailable",
        },
    )
    assert back.status_code == 302
    told = dict(httpx.URL(back.headers["location"]).params)
    assert told["error"] == "temporarily_unavailable"
    assert (told["state"], told["iss"]) == ("after-loss", live_url)

    # An admin sees the same warning, with the way to fix it.
    alice = _browser("alice", "alice-pass-123", emulator)
    page, _ = _consent_page(alice, client.authorize_url(challenge, resource=connector.url))
    assert ALLOW_DISABLED.search(page.text)
    assert f'href="/dashboard/connectors/{connector.pk}/connect"' in page.text


def test_allow_on_a_page_older_than_the_loss_still_tells_the_client(quickbooks, live_url):
    """The consent page said the shared account was fine; it was lost before Allow."""
    emulator = quickbooks["emulator"]
    connector = quickbooks["shared"]
    shared, _ = emulator.store_connection(connector=connector)
    client = OAuthClient.register(live_url)
    bob = _browser("bob", "bob-pass-123", emulator)
    page, pending = _consent_page(bob, client.authorize_url(pkce_pair()[1], resource=connector.url))
    assert not ALLOW_DISABLED.search(page.text) and "cannot be used" not in page.text
    UpstreamConnection.objects.filter(pk=shared.pk).update(status="revoked")
    answer = bob.http.post(
        f"{live_url}/authorize",
        data={
            "csrfmiddlewaretoken": re.search(r'csrfmiddlewaretoken" value="([^"]+)"', page.text)[1],
            "pending": pending,
            "allow": "yes",
        },
    )
    told = dict(httpx.URL(answer.headers["location"]).params)
    assert told["error"] == "temporarily_unavailable" and told["state"] == "st4te"
