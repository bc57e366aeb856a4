"""The MCP endpoint's HTTP behaviour: bad input, CORS, host checks, health."""

import re

import httpx
import pytest

from tests.support.flow import OAuthClient, mcp_post
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(live_url, acme):
    client = OAuthClient.register(live_url)
    return client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)["access_token"]


def test_malformed_json_is_a_json_rpc_parse_error(live_url, acme, token):
    response = mcp_post(acme["connector"].url, token, b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700


def test_oversized_body_is_refused_without_a_500(live_url, acme, token):
    payload = (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":"' + b"a" * (5 << 20) + b'"}}'
    )
    response = mcp_post(acme["connector"].url, token, payload)
    assert response.status_code == 413


def test_tool_failure_is_a_tool_error_not_a_protocol_error(live_url, acme, token):
    payload = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "fail", "arguments": {"message": "upstream is down"}},
    }
    response = mcp_post(acme["connector"].url, token, payload)
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["isError"] is True
    assert "upstream is down" in result["content"][0]["text"]


def test_preflight_and_exposed_headers_for_browser_clients(live_url, acme, settings):
    settings.EXTRA_ALLOWED_ORIGINS = ["http://localhost:6274"]  # a local MCP Inspector
    response = httpx.options(
        acme["connector"].url,
        headers={
            "Origin": "http://localhost:6274",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, mcp-protocol-version",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Mcp-Protocol-Version" in response.headers["access-control-allow-headers"]
    assert "Mcp-Session-Id" in response.headers["access-control-expose-headers"]


def test_only_allowed_origins_reach_the_endpoint(live_url, acme, token, settings):
    settings.EXTRA_ALLOWED_ORIGINS = ["http://localhost:6274"]
    url = acme["connector"].url
    for origin in ("https://rebinding.example", "null", "http://localhost:6275"):
        refused = mcp_post(url, token, headers={"Origin": origin})
        assert refused.status_code == 403, origin
        assert refused.json()["error"]["code"] == -32600 and "id" not in refused.json()
        preflight = httpx.options(url, headers={"Origin": origin})
        assert preflight.status_code == 403, origin
    for origin in (live_url, "http://localhost:6274"):
        assert mcp_post(url, token, headers={"Origin": origin}).status_code == 200, origin
    assert mcp_post(url, token).status_code == 200  # no Origin: not a browser


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
def test_get_and_delete_answer_405(live_url, acme, token, version):
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "text/event-stream",
        "MCP-Protocol-Version": version,
        "Mcp-Session-Id": "abc",
    }
    for method in ("GET", "DELETE"):
        response = httpx.request(method, acme["connector"].url, headers=headers)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST, OPTIONS"
        assert response.json()["error"]["code"] == -32600


def test_a_token_without_the_scope_gets_a_complete_insufficient_scope_challenge(
    live_url, acme, token
):
    from oauth2_provider.models import AccessToken

    AccessToken.objects.update(scope="profile")
    response = mcp_post(acme["connector"].url, token)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    challenge = response.headers["www-authenticate"]
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    assert challenge.startswith("Bearer ")
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "mcp"
    assert params["resource_metadata"] == (
        f"{live_url}/.well-known/oauth-protected-resource/t/acme/echo/mcp"
    )
    assert params["error_description"]


def test_a_foreign_host_header_is_refused(live_url, acme, token):
    response = mcp_post(acme["connector"].url, token, headers={"Host": "rebound.example"})
    assert response.status_code == 421


def test_the_mcp_endpoint_never_redirects(live_url, acme):
    for path in ("/t/acme/echo/mcp/", "/t/acme/echo/mcp"):
        response = httpx.post(f"{live_url}{path}", json={})
        assert response.status_code in (401, 404)
        assert "location" not in response.headers


def test_health_and_readiness(live_url):
    assert httpx.get(f"{live_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
