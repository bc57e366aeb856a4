"""A tool that needs a scope the token lacks: 403 with a complete ``insufficient_scope``
challenge, and the SDK's OAuth client steps up (authorizes again with the wider scope, the
member consents to it) and the call succeeds.

QuickBooks' write tools need ``quickbooks.write`` (``requires_scope`` in connectors.base); a
client first gets only ``mcp``, the scope of the 401 challenge.
"""

import anyio
import httpx
import pytest

from tenants.models import Connector
from tests.support.flow import OAuthClient, mcp_post, stored_access_token
from tests.support.mcp_client import MemoryStorage, connected, oauth_provider
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)

WRITE = "quickbooks.write"


@pytest.fixture
def writable(qbo_connector):
    Connector.objects.filter(pk=qbo_connector["connector"].pk).update(
        settings={"writes_allowed": True}
    )
    return qbo_connector


def _call(url, token, tool, arguments, version="2025-06-18"):
    params = {"name": tool, "arguments": arguments}
    headers = {"MCP-Protocol-Version": version}
    if version == "2026-07-28":  # the per-request envelope, in the body and the headers
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers.update({"Mcp-Method": "tools/call", "Mcp-Name": tool})
    payload = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    return mcp_post(url, token, payload, headers=headers, timeout=60)


def test_scopes_are_offered_where_clients_look(writable, live_url):
    url = writable["connector"].url
    prm = httpx.get(
        f"{live_url}/.well-known/oauth-protected-resource/t/acme/qbo/mcp", timeout=30
    ).json()
    assert prm["scopes_supported"] == ["mcp", WRITE]
    echo = httpx.get(
        f"{live_url}/.well-known/oauth-protected-resource/t/acme/echo/mcp", timeout=30
    ).json()
    assert echo["scopes_supported"] == ["mcp"]  # the echo kind's tools need nothing more
    metadata = httpx.get(f"{live_url}/.well-known/oauth-authorization-server", timeout=30).json()
    assert {"mcp", WRITE} <= set(metadata["scopes_supported"])
    # The 401 still asks for the platform's own scope only: the first grant stays small.
    challenge = mcp_post(url, None).headers["www-authenticate"]
    assert 'scope="mcp"' in challenge


@pytest.mark.parametrize("version", ["2025-06-18", "2026-07-28"])
def test_a_write_without_the_write_scope_is_a_complete_insufficient_scope_challenge(
    writable, live_url, version
):
    url = writable["connector"].url
    writes_before = writable["emulator"].counters["api.write"]
    refused = _call(url, writable["token"], "create_customer", {"display_name": "Step Co"}, version)
    assert refused.status_code == 403, refused.text
    metadata = f"{live_url}/.well-known/oauth-protected-resource/t/acme/qbo/mcp"
    assert refused.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", scope="mcp {WRITE}", '
        f'resource_metadata="{metadata}", error_description="This tool needs the scope '
        f'{WRITE}, which the token lacks: authorize again with it"'
    )
    assert refused.json()["error"] == "insufficient_scope"
    assert writable["emulator"].counters["api.write"] == writes_before  # never reached
    # A read with the same token is answered as before.
    read = _call(url, writable["token"], "company_info", {}, version)
    assert read.status_code == 200, read.text
    # tools/list is not filtered by scope: the write tools are listed with what they need.
    listed = mcp_post(url, writable["token"]).json()["result"]["tools"]
    tools = {t["name"]: t for t in listed}
    assert tools["create_customer"]["_meta"]["securitySchemes"] == [
        {"type": "oauth2", "scopes": [WRITE]}
    ]
    assert "securitySchemes" not in (tools["company_info"].get("_meta") or {})


def test_a_remembered_consent_does_not_cover_a_wider_scope(writable, live_url):
    client = OAuthClient.register(live_url)
    browser = Browser("bob", "bob-pass-123")
    url = writable["connector"].url
    client.tokens(browser, url)  # consents to mcp
    consents = len([p for p in browser.pages if 'name="pending"' in p.text])
    client.tokens(browser, url)  # remembered: no page
    assert len([p for p in browser.pages if 'name="pending"' in p.text]) == consents
    tokens = client.tokens(browser, url, scope=f"mcp {WRITE}")
    pages = [p for p in browser.pages if 'name="pending"' in p.text]
    assert len(pages) == consents + 1  # asked again, and told what the new scope allows
    assert WRITE in pages[-1].text and "Create and change QuickBooks records" in pages[-1].text
    assert tokens["scope"] == f"mcp {WRITE}"


def test_the_sdk_client_steps_up_and_the_write_succeeds(writable):
    url = writable["connector"].url
    storage = MemoryStorage()
    browser = Browser("bob", "bob-pass-123")

    async def scenario():
        provider = oauth_provider(url, browser, storage)
        async with connected(url, provider) as client:
            read = await client.call_tool("company_info", {})
            assert not read.is_error
            first_scope = storage.tokens.scope
            created = await client.call_tool("create_customer", {"display_name": "Step Up Co"})
            return first_scope, created

    first_scope, created = anyio.run(scenario)
    assert first_scope == "mcp"
    assert not created.is_error, created.content[0].text
    books = writable["emulator"].company(writable["issued"]["realmId"])
    assert [c for c in books.all("Customer") if c["DisplayName"] == "Step Up Co"]
    # The client authorized again with the union of what it had and what the challenge named,
    # and bob consented to the new scope on a page that said what it allows.
    assert set(storage.tokens.scope.split()) == {"mcp", WRITE}
    assert set(stored_access_token(storage.tokens.access_token).scope.split()) == {"mcp", WRITE}
    consents = [p for p in browser.pages if 'name="pending"' in p.text]
    assert len(consents) == 2 and WRITE in consents[-1].text


def test_a_tool_the_policy_refuses_is_refused_without_a_challenge(writable):
    from tenants.services import connector_update

    connector_update(connector=writable["connector"], tool_policy={"admins_only": ["create_bill"]})
    url, token = writable["connector"].url, writable["token"]
    refused = _call(url, token, "create_bill", {"vendor_id": "1", "lines": []})
    assert refused.status_code == 200, refused.text  # no consent asked for a useless scope
    result = refused.json()["result"]
    assert result["isError"] and "admins" in result["content"][0]["text"]
    assert _call(url, token, "create_customer", {"display_name": "X"}).status_code == 403
