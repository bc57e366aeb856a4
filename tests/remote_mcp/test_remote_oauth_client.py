"""The platform as OAuth client of real upstream servers: discovery, identity, code, refresh."""

import secrets

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.base import UpstreamReauthRequired
from connectors.remote_mcp import oauth
from connectors.remote_mcp.discovery import DiscoveryFailed, discover
from tests.support.live import LiveServer
from tests.support.upstreams import start_upstream, upstream_sign_in

REDIRECT = "https://platform.example/upstream/remote_mcp/callback"


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def legacy():
    upstream = start_upstream("legacy_oauth", users={"ann": "pw-ann"})
    yield upstream
    upstream.stop()


@pytest.fixture
def modern():
    upstream = start_upstream("modern_oauth", users={"ann": "pw-ann"})
    yield upstream
    upstream.stop()


def _whoami(upstream, access_token: str) -> httpx.Response:
    import anyio

    from connectors.remote_mcp.wire import Sessions, UpstreamClient

    async def call():
        async with httpx.AsyncClient() as h:
            client = UpstreamClient(
                upstream.url,
                http=h,
                headers={"Authorization": f"Bearer {access_token}"},
                sessions=Sessions(),
            )
            return await client.request("tools/call", {"name": "whoami", "arguments": {}})

    return anyio.run(call)


def _connect(upstream, http, *, cimd_url=None, user=("ann", "pw-ann")):
    server = discover(upstream.url, http=http)
    identity = oauth.client_identity(server, http=http, redirect_uri=REDIRECT, cimd_url=cimd_url)
    verifier = secrets.token_urlsafe(48)
    url = oauth.authorization_url(
        server, identity, redirect_uri=REDIRECT, state="state-1", verifier=verifier
    )
    answer = upstream_sign_in(url, *user)
    assert answer["state"] == "state-1"
    tokens = oauth.exchange_code(
        server, identity, http=http, code=answer["code"], verifier=verifier, redirect_uri=REDIRECT
    )
    return server, identity, tokens


def test_hand_rolled_2025_03_26_server_is_found_at_its_root(legacy, http):
    server = discover(legacy.url, http=http)
    assert server.authorization_endpoint == f"{legacy.base}/authorize"
    assert server.registration_endpoint == f"{legacy.base}/register"
    assert not server.cimd_supported
    assert server.resource == legacy.url  # no PRM: the MCP URL itself
    # It has no protected-resource metadata: the trace shows each URL tried.
    assert any("oauth-protected-resource/mcp: 404" in step for step in server.steps)
    assert any("oauth-authorization-server: 200" in step for step in server.steps)


def test_no_metadata_at_all_falls_back_to_default_endpoints(http):
    upstream = start_upstream("legacy_oauth", users={"ann": "pw-ann"}, root_metadata=False)
    try:
        server = discover(upstream.url, http=http)
        assert server.token_endpoint == f"{upstream.base}/token"
        assert "2025-03-26 default endpoints" in server.steps[-1]
        _, _, tokens = _connect(upstream, http)
        assert _whoami(upstream, tokens.access_token)["content"][0]["text"] == "ann"
    finally:
        upstream.stop()


def test_legacy_code_flow_with_dcr_and_pkce(legacy, http):
    server, identity, tokens = _connect(legacy, http)
    assert identity.how == "dcr" and identity.client_secret
    assert _whoami(legacy, tokens.access_token)["content"][0]["text"] == "ann"
    exchange = legacy.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code" and exchange["code_verifier"]
    # The grant string carries everything a refresh needs.
    grant = oauth.Grant.loads(tokens.refresh_token)
    refreshed = oauth.refresh(grant, http=http)
    assert refreshed.access_token != tokens.access_token
    assert _whoami(legacy, refreshed.access_token)["content"][0]["text"] == "ann"


def test_revoked_grant_needs_reauth(legacy, http):
    _, _, tokens = _connect(legacy, http)
    legacy.revoke_all()
    with pytest.raises(UpstreamReauthRequired, match="invalid_grant"):
        oauth.refresh(oauth.Grant.loads(tokens.refresh_token), http=http)


def test_wrong_verifier_is_refused(legacy, http):
    server = discover(legacy.url, http=http)
    identity = oauth.client_identity(server, http=http, redirect_uri=REDIRECT)
    url = oauth.authorization_url(
        server,
        identity,
        redirect_uri=REDIRECT,
        state="s",
        verifier=secrets.token_urlsafe(48),
    )
    answer = upstream_sign_in(url, "ann", "pw-ann")
    with pytest.raises(UpstreamReauthRequired, match="PKCE"):
        oauth.exchange_code(
            server,
            identity,
            http=http,
            code=answer["code"],
            verifier=secrets.token_urlsafe(48),
            redirect_uri=REDIRECT,
        )


def test_modern_server_found_through_its_protected_resource_metadata(modern, http):
    server = discover(modern.url, http=http)
    assert server.resource == modern.url
    assert server.cimd_supported and server.scope == "notes"
    assert server.revocation_endpoint == f"{modern.base}/revoke"


def test_modern_with_cimd_and_rotating_refresh_tokens(modern, http):
    metadata = LiveServer()
    cimd_url = f"{metadata.url}/client.json"

    async def document(request):
        return JSONResponse(
            {
                "client_id": cimd_url,
                "client_name": "platform",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
            }
        )

    metadata.start(Starlette(routes=[Route("/client.json", document)]), lifespan="off")
    try:
        _, identity, tokens = _connect(modern, http, cimd_url=cimd_url)
        assert identity.how == "cimd" and identity.client_id == cimd_url
        assert modern.token_requests[-1]["resource"] == modern.url
        first = oauth.Grant.loads(tokens.refresh_token)
        second = oauth.refresh(first, http=http)
        assert oauth.Grant.loads(second.refresh_token).refresh_token != first.refresh_token
        assert _whoami(modern, second.access_token)["content"][0]["text"] == "ann"
        with pytest.raises(UpstreamReauthRequired):  # the spent refresh token is dead
            oauth.refresh(first, http=http)
        oauth.revoke(oauth.Grant.loads(second.refresh_token), http=http)
        with pytest.raises(UpstreamReauthRequired):
            oauth.refresh(oauth.Grant.loads(second.refresh_token), http=http)
    finally:
        metadata.stop()


def test_modern_without_cimd_url_registers(modern, http):
    _, identity, tokens = _connect(modern, http)
    assert identity.how == "dcr"
    assert _whoami(modern, tokens.access_token)["content"][0]["text"] == "ann"


def test_unreachable_upstream_is_a_clear_discovery_error(http):
    from tests.support.live import free_port

    url = f"http://127.0.0.1:{free_port()}/mcp"
    with pytest.raises(DiscoveryFailed, match="could not be reached"):
        discover(url, http=http)
