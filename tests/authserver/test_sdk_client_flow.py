"""The official MCP SDK client connects through the whole OAuth flow and calls tools."""

import time

import anyio
import httpx
import pytest
from oauth2_provider.models import AccessToken, Application

from events.models import Event
from tests.support.flow import stored_access_token
from tests.support.mcp_client import MemoryStorage, connected, oauth_provider
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)


def test_sdk_client_registers_authorizes_calls_tools_and_refreshes(live_url, acme):
    url = acme["connector"].url
    storage = MemoryStorage()
    browser = Browser("bob", "bob-pass-123")

    async def scenario():
        provider = oauth_provider(url, browser, storage)
        async with connected(url, provider) as client:
            tools = await client.list_tools()
            assert {t.name for t in tools.tools} >= {"echo", "whoami"}
            result = await client.call_tool("whoami", {})
            assert result.structured_content["tenant"] == "acme"
            assert result.structured_content["user"] == "bob"
            echoed = await client.call_tool("echo", {"text": "hello"})
            assert echoed.content[0].text == "hello"

        # Expire the access token: the client must refresh (not re-authorize) and carry on.
        first_access = storage.tokens.access_token
        await anyio.to_thread.run_sync(_expire_access_tokens)
        provider.context.token_expiry_time = time.time() - 1
        pages_before = len(browser.pages)
        async with connected(url, provider) as client:
            result = await client.call_tool("echo", {"text": "again"})
            assert result.content[0].text == "again"
        assert storage.tokens.access_token != first_access
        assert len(browser.pages) == pages_before  # no second trip through the browser

    anyio.run(scenario)

    redirect = browser.last_redirect
    assert redirect["iss"] == live_url
    app = Application.objects.get(client_id=storage.client_info.client_id)
    assert app.name == "Claude"
    token = stored_access_token(storage.tokens.access_token)
    assert token.resource == [url]
    kinds = set(Event.objects.values_list("kind", flat=True))
    assert {
        "mcp.unauthenticated",
        "discovery.resource_metadata",
        "discovery.as_metadata",
        "oauth.register",
        "oauth.authorize",
        "oauth.consent",
        "oauth.code_issued",
        "oauth.token",
        "oauth.refresh",
        "mcp.first_call",
    } <= kinds


def _expire_access_tokens():
    from django.utils import timezone

    AccessToken.objects.update(expires=timezone.now())


def test_unauthenticated_request_gets_401_with_resource_metadata(live_url, acme):
    url = acme["connector"].url
    response = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    expected = f"{live_url}/.well-known/oauth-protected-resource/t/acme/echo/mcp"
    assert f'resource_metadata="{expected}"' in challenge
    assert 'scope="mcp"' in challenge
    assert response.headers["access-control-expose-headers"].startswith("WWW-Authenticate")

    prm = httpx.get(expected).json()
    assert prm["resource"] == url
    assert prm["authorization_servers"] == [live_url]
    assert prm["scopes_supported"] == ["mcp"]


def test_unknown_connector_is_404(live_url, acme):
    response = httpx.post(f"{live_url}/t/acme/nope/mcp", json={})
    assert response.status_code == 404
    assert (
        httpx.get(f"{live_url}/.well-known/oauth-protected-resource/t/acme/nope/mcp").status_code
        == 404
    )
