"""Discovery and Dynamic Client Registration as the real MCP clients of CLIENTS.md use them.

Every test speaks HTTP to the live server: what is asserted is what a client sees. Table-driven
checks loop inside one test (each failure names its case): every test of a live server costs a
database flush, which is slow on PostgreSQL.
"""

import json
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

from tests.support.flow import stored_access_token
from tests.support.live import free_port
from tests.support.oauth import Browser
from tests.support.pkce import (
    Pkce,
    authorize_url,
    exchange_code,
    register,
    registered_client,
)

pytestmark = pytest.mark.django_db(transaction=True)


CODE_ONLY = {"grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}


# --- 1. Discovery -------------------------------------------------------------------------------


def test_discovery_documents_at_the_root_say_what_mcp_clients_check(live_url):
    documents = {}
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        response = httpx.get(f"{live_url}{path}", headers={"Origin": "https://inspector.example"})
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("application/json"), path
        assert response.headers["access-control-allow-origin"] == "*", path
        documents[path] = response.json()
    # 2025-11-25 clients try one, then the other: they must not disagree.
    metadata, oidc = documents.values()
    assert oidc == metadata

    # The issuer is exactly the origin a 2025-03-26 client derives (no trailing slash).
    assert metadata["issuer"] == live_url
    assert not metadata["issuer"].endswith("/")
    assert metadata["registration_endpoint"] == f"{live_url}/register"
    assert metadata["authorization_endpoint"] == f"{live_url}/authorize"
    assert metadata["token_endpoint"] == f"{live_url}/token"
    # 2025-11-25 clients refuse metadata without it; plain must not be offered.
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    # Claude only uses CIMD when both of these are present.
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    assert metadata["client_id_metadata_document_supported"] is True
    assert metadata["authorization_response_iss_parameter_supported"] is True
    # Every token's scope, then those installed kinds' tools may need (step-up).
    assert metadata["scopes_supported"] == ["mcp", "quickbooks.write"]
    assert metadata["response_types_supported"] == ["code"]


def test_cors_preflight_to_register_and_token_is_answered(live_url):
    for path in ("/register", "/token"):
        response = httpx.options(
            f"{live_url}{path}",
            headers={
                "Origin": "http://localhost:6274",  # the MCP Inspector
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )

        assert response.status_code in (200, 204), path
        assert response.headers["access-control-allow-origin"] == "*", path
        assert "POST" in response.headers["access-control-allow-methods"], path
        assert "content-type" in response.headers["access-control-allow-headers"].lower(), path


def test_registration_and_token_errors_carry_cors_headers(live_url):
    """A browser client must be able to read the error, not just the success."""
    registration = httpx.post(f"{live_url}/register", content=b"{", headers=_json_type())
    token = httpx.post(f"{live_url}/token", data={"grant_type": "authorization_code"})

    assert registration.status_code == 400
    assert registration.headers["access-control-allow-origin"] == "*"
    assert token.status_code in (400, 401)
    assert token.headers["access-control-allow-origin"] == "*"


def test_post_to_oauth_endpoints_never_redirects(live_url):
    """Django's APPEND_SLASH must not turn a client's POST into a 301 (clients drop the body)."""
    for path in ("/token", "/token/", "/register", "/register/"):
        response = httpx.post(
            f"{live_url}{path}", content=b"{}", headers=_json_type(), follow_redirects=False
        )

        assert not response.is_redirect, (path, response.status_code, response.headers)
        assert response.status_code < 500, path


# --- 2. Every registration shape of CLIENTS.md is accepted ---------------------------------------

SHAPES = {
    "claude-secret-post": {
        "client_name": "Claude",
        "redirect_uris": [
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.com/api/mcp/auth_callback",
        ],
        "token_endpoint_auth_method": "client_secret_post",
        **CODE_ONLY,
    },
    "claude-public": {
        "client_name": "Claude",
        "redirect_uris": [
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.com/api/mcp/auth_callback",
        ],
        "token_endpoint_auth_method": "none",
        **CODE_ONLY,
    },
    "claude-code": {
        "client_name": "Claude Code (acme)",
        "redirect_uris": ["http://localhost:54712/callback"],
        "token_endpoint_auth_method": "none",
        **CODE_ONLY,
    },
    "chatgpt": {
        "client_name": "ChatGPT",
        "redirect_uris": [
            "https://chatgpt.com/connector_platform_oauth_redirect",
            "https://chatgpt.com/connector/oauth/6f1c2a9e0b",
        ],
        "token_endpoint_auth_method": "client_secret_post",
        **CODE_ONLY,
    },
    "cursor": {
        "client_name": "Cursor",
        "redirect_uris": [
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback",
        ],
        "token_endpoint_auth_method": "none",
        **CODE_ONLY,
    },
    "vscode": {
        "client_name": "Visual Studio Code",
        "redirect_uris": [
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/",
            "https://vscode.dev/redirect",
        ],
        "token_endpoint_auth_method": "none",
        **CODE_ONLY,
    },
    "mcp-remote": {
        "client_name": "MCP CLI Proxy",
        "redirect_uris": ["http://localhost:3334/oauth/callback"],
        "token_endpoint_auth_method": "none",
        **CODE_ONLY,
    },
    "native-app": {
        "client_name": "Some desktop app",
        "application_type": "native",
        "redirect_uris": ["http://127.0.0.1:49152/callback"],
        "token_endpoint_auth_method": "none",
        **CODE_ONLY,
    },
    "web-app": {
        "client_name": "Some web app",
        "application_type": "web",
        "redirect_uris": ["https://app.example.com/oauth/callback"],
        "token_endpoint_auth_method": "client_secret_post",
        **CODE_ONLY,
    },
    "native-app-custom-scheme": {
        "client_name": "Some CLI",
        "application_type": "native",
        "redirect_uris": [
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "http://localhost:8787/cb",
        ],
        "token_endpoint_auth_method": "none",
        **CODE_ONLY,
    },
    # The python SDK's OAuth client says "native" whatever its redirect URIs are.
    "sdk-default-native-with-https": {
        "client_name": "SDK client",
        "application_type": "native",
        "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
        "token_endpoint_auth_method": "none",
        **CODE_ONLY,
    },
    "secret-basic": {
        "client_name": "Basic-auth client",
        "redirect_uris": ["https://basic.example.com/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        **CODE_ONLY,
    },
}


def test_registration_shape_of_every_real_client_is_accepted(live_url):
    for name, shape in SHAPES.items():
        response = register(live_url, shape)

        assert response.status_code == 201, (name, response.text)
        assert response.headers["cache-control"] == "no-store", name
        body = response.json()
        assert body["client_id"], name
        assert body["redirect_uris"] == shape["redirect_uris"], name
        # Clients authenticate the way the response says: it must be what they asked for.
        assert body["token_endpoint_auth_method"] == shape["token_endpoint_auth_method"], name
        assert "authorization_code" in body["grant_types"], name
        if shape["token_endpoint_auth_method"] == "none":
            assert "client_secret" not in body, name
        else:
            assert body["client_secret"], name
            assert body["client_secret_expires_at"] == 0, name
        if "application_type" in shape:
            assert body["application_type"] == shape["application_type"], name

        app = Application.objects.get(client_id=body["client_id"])
        assert app.registration_source == Application.RegistrationSource.DCR, name
        assert app.redirect_uris.split() == shape["redirect_uris"], name
        public = shape["token_endpoint_auth_method"] == "none"
        assert app.client_type == ("public" if public else "confidential"), name


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "none"])
def test_token_endpoint_accepts_the_auth_method_registration_announced(live_url, acme, method):
    """A confidential client that asked for client_secret_post must not be told to use basic."""
    redirect = "https://claude.ai/api/mcp/auth_callback"
    client = registered_client(
        live_url,
        {"redirect_uris": [redirect], "token_endpoint_auth_method": method, **CODE_ONLY},
    )
    pkce = Pkce()
    connector = acme["connector"].url
    url = authorize_url(
        live_url,
        client_id=client["client_id"],
        redirect_uri=redirect,
        pkce=pkce,
        resource=connector,
    )
    query = Browser("bob", "bob-pass-123").authorize(url)

    token = exchange_code(
        live_url,
        client=client,
        code=query["code"],
        redirect_uri=redirect,
        pkce=pkce,
        resource=connector,
    )

    assert token.status_code == 200, token.text
    assert token.json()["token_type"].lower() == "bearer"


@pytest.mark.parametrize(
    ("registered", "used"),
    [
        # VS Code: 33418 was busy, so the redirect comes back on another port.
        ("http://127.0.0.1:33418/", "http://127.0.0.1:{port}/"),
        # Claude Code and mcp-remote listen on localhost at a random port.
        ("http://localhost:54712/callback", "http://localhost:{port}/callback"),
    ],
    ids=["vscode-127.0.0.1", "claude-code-localhost"],
)
def test_loopback_redirect_matches_on_any_port(live_url, acme, registered, used):
    client = registered_client(
        live_url,
        {
            "client_name": "Visual Studio Code",
            "redirect_uris": [registered, "https://vscode.dev/redirect"],
            "token_endpoint_auth_method": "none",
            **CODE_ONLY,
        },
    )
    redirect = used.format(port=_port_other_than(33418, 54712))
    pkce = Pkce()
    connector = acme["connector"].url

    query = Browser("bob", "bob-pass-123").authorize(
        authorize_url(
            live_url,
            client_id=client["client_id"],
            redirect_uri=redirect,
            pkce=pkce,
            resource=connector,
        )
    )

    assert query["_redirect"] == redirect.split("?")[0]
    assert query["code"] and query["state"] == "state-123"
    assert query["iss"] == live_url
    token = exchange_code(
        live_url,
        client=client,
        code=query["code"],
        redirect_uri=redirect,
        pkce=pkce,
        resource=connector,
    )
    assert token.status_code == 200, token.text
    assert stored_access_token(token.json()["access_token"]).resource == [connector]


def test_port_wildcard_is_only_for_loopback(live_url, acme):
    """https://vscode.dev/redirect is registered; the same host on another port is not."""
    client = registered_client(live_url, SHAPES["vscode"])
    browser = Browser("bob", "bob-pass-123")
    _sign_in(browser, live_url)

    response = browser.http.get(
        authorize_url(
            live_url,
            client_id=client["client_id"],
            redirect_uri="https://vscode.dev:8443/redirect",
            pkce=Pkce(),
            resource=acme["connector"].url,
        )
    )

    assert response.status_code == 400
    assert "location" not in response.headers
    assert "code=" not in response.text


def test_cursor_custom_scheme_redirect_receives_the_code(live_url, acme):
    client = registered_client(live_url, SHAPES["cursor"])
    redirect = "cursor://anysphere.cursor-mcp/oauth/callback"
    pkce = Pkce()
    connector = acme["connector"].url

    query = Browser("bob", "bob-pass-123").authorize(
        authorize_url(
            live_url,
            client_id=client["client_id"],
            redirect_uri=redirect,
            pkce=pkce,
            resource=connector,
        )
    )

    assert query["_redirect"] == redirect
    assert query["state"] == "state-123"
    assert query["iss"] == live_url
    token = exchange_code(
        live_url,
        client=client,
        code=query["code"],
        redirect_uri=redirect,
        pkce=pkce,
        resource=connector,
    )
    assert token.status_code == 200, token.text


# --- 3. Refusals: RFC 7591 error JSON, never a 500 -----------------------------------------------

VALID = {
    "client_name": "x",
    "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
    "token_endpoint_auth_method": "none",
    **CODE_ONLY,
}

REFUSALS = {
    "malformed-json": (b'{"redirect_uris": [', "invalid_client_metadata"),
    "not-utf8": (b'{"client_name": "\xff\xfe"}', "invalid_client_metadata"),
    "json-array": (json.dumps([VALID]).encode(), "invalid_client_metadata"),
    "json-null": (b"null", "invalid_client_metadata"),
    "redirect-uris-string": (
        json.dumps({**VALID, "redirect_uris": "https://claude.ai/api/mcp/auth_callback"}).encode(),
        "invalid_client_metadata",
    ),
    "redirect-uris-missing": (
        json.dumps({k: v for k, v in VALID.items() if k != "redirect_uris"}).encode(),
        "invalid_client_metadata",
    ),
    "plain-http-not-loopback": (
        json.dumps({**VALID, "redirect_uris": ["http://evil.example.com/cb"]}).encode(),
        "invalid_redirect_uri",
    ),
    "plain-http-among-good-ones": (
        json.dumps(
            {**VALID, "redirect_uris": [*VALID["redirect_uris"], "http://10.0.0.5/cb"]}
        ).encode(),
        "invalid_redirect_uri",
    ),
    "fragment": (
        json.dumps({**VALID, "redirect_uris": ["https://claude.ai/cb#frag"]}).encode(),
        "invalid_redirect_uri",
    ),
    "unknown-grant-type": (
        json.dumps({**VALID, "grant_types": ["urn:example:magic"]}).encode(),
        "invalid_client_metadata",
    ),
    "unknown-auth-method": (
        json.dumps({**VALID, "token_endpoint_auth_method": "private_key_jwt"}).encode(),
        "invalid_client_metadata",
    ),
    "implicit-response-type": (
        json.dumps({**VALID, "response_types": ["token"]}).encode(),
        "invalid_client_metadata",
    ),
    # application_type (OIDC registration, asked of DCR clients by 2026-07-28) must fit the
    # redirect URIs: a web client redirects to https hosts only.
    "web-app-with-loopback-redirect": (
        json.dumps(
            {**VALID, "application_type": "web", "redirect_uris": ["http://127.0.0.1:3000/cb"]}
        ).encode(),
        "invalid_redirect_uri",
    ),
    "web-app-with-custom-scheme": (
        json.dumps(
            {**VALID, "application_type": "web", "redirect_uris": ["cursor://x/oauth/callback"]}
        ).encode(),
        "invalid_redirect_uri",
    ),
    "unknown-application-type": (
        json.dumps({**VALID, "application_type": "service"}).encode(),
        "invalid_redirect_uri",
    ),
    # The server only speaks authorization_code (+ refresh_token): its metadata says so, and an
    # anonymous registration must not obtain a client that could use any other grant.
    **{
        f"grant-{grant}": (
            json.dumps({**VALID, "grant_types": [grant]}).encode(),
            "invalid_client_metadata",
        )
        for grant in (
            "client_credentials",
            "password",
            "implicit",
            "urn:ietf:params:oauth:grant-type:device_code",
        )
    },
}


def test_bad_registration_is_refused_with_rfc7591_error(live_url):
    advertised = httpx.get(f"{live_url}/.well-known/oauth-authorization-server").json()
    assert advertised["grant_types_supported"] == ["authorization_code", "refresh_token"]

    for name, (body, error) in REFUSALS.items():
        response = httpx.post(f"{live_url}/register", content=body, headers=_json_type())

        assert response.status_code == 400, (name, response.text)
        assert response.headers["content-type"].startswith("application/json"), name
        assert response.json()["error"] == error, (name, response.text)
        assert response.json()["error_description"], name
        assert not Application.objects.exists(), name


def _oversized() -> bytes:
    body = json.dumps({**VALID, "software_statement_padding": "x" * (17 * 1024)}).encode()
    assert len(body) > 16 * 1024
    return body


def test_oversized_registration_is_refused_with_or_without_content_length(live_url):
    declared = httpx.post(f"{live_url}/register", content=_oversized(), headers=_json_type())

    def chunks():
        body = _oversized()
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    # Chunked transfer encoding carries no Content-Length: the limit must still hold.
    chunked = httpx.post(f"{live_url}/register", content=chunks(), headers=_json_type())

    assert "content-length" not in chunked.request.headers
    for response in (declared, chunked):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_client_metadata"
    assert not Application.objects.exists()


def test_registration_flood_from_one_address_gets_429(live_url, settings):
    settings.DCR_RATE_LIMIT = 3
    settings.DCR_RATE_WINDOW = 86400  # windows are aligned: a long one is never crossed mid-test

    statuses = [register(live_url, VALID) for _ in range(5)]

    assert [r.status_code for r in statuses] == [201, 201, 201, 429, 429]
    refused = statuses[3]
    assert refused.json()["error"] == "too_many_requests"
    assert 0 < int(refused.headers["retry-after"]) <= 86400
    assert refused.headers["access-control-allow-origin"] == "*"
    assert Application.objects.count() == 3


# --- 4. Unused registrations expire ---------------------------------------------------------------


def test_unused_dynamic_registrations_are_pruned_and_used_ones_kept(live_url, acme, settings):
    from authserver.registration import registrations_prune

    settings.UNUSED_REGISTRATION_LIFETIME = 3600
    now = timezone.now()
    old = now - timedelta(seconds=3600 + 60)
    recent = now - timedelta(seconds=3600 - 60)

    unused = _registered_app(live_url, created=old)
    with_token = _registered_app(live_url, created=old)
    with_refresh_only = _registered_app(live_url, created=old)
    with_grant_only = _registered_app(live_url, created=old)
    fresh = _registered_app(live_url, created=recent)
    manual = Application.objects.create(
        name="manual",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://manual.example.com/cb",
        registration_source=Application.RegistrationSource.MANUAL,
    )
    Application.objects.filter(pk=manual.pk).update(created=old)

    user = acme["tenant"].memberships.first().user
    access = AccessToken.objects.create(
        user=user,
        application=with_token,
        token="at-used",
        expires=now + timedelta(hours=1),
        scope="mcp",
        resource=[acme["connector"].url],
    )
    expired_access = AccessToken.objects.create(
        user=user,
        application=with_refresh_only,
        token="at-expired",
        expires=now - timedelta(days=1),
        scope="mcp",
    )
    RefreshToken.objects.create(
        user=user, application=with_refresh_only, token="rt", access_token=expired_access
    )
    expired_access.delete()  # only the refresh token is left
    Grant.objects.create(
        user=user,
        application=with_grant_only,
        code="code-1",
        expires=now + timedelta(minutes=5),
        redirect_uri="https://claude.ai/api/mcp/auth_callback",
        scope="mcp",
        code_challenge="x" * 43,
        code_challenge_method="S256",
    )
    # Every DCR app holds a registration access token (RFC 7592): that alone is not "use".
    assert AccessToken.objects.filter(application=unused).exists()

    deleted = registrations_prune(now=now)

    assert deleted == 1
    remaining = set(Application.objects.values_list("pk", flat=True))
    assert unused.pk not in remaining
    assert {with_token.pk, with_refresh_only.pk, with_grant_only.pk, fresh.pk, manual.pk} <= (
        remaining
    )
    assert AccessToken.objects.filter(pk=access.pk).exists()
    # The pruned client can no longer be used.
    assert httpx.post(
        f"{live_url}/token",
        data={"grant_type": "authorization_code", "code": "x", "client_id": unused.client_id},
    ).json()["error"] in ("invalid_client", "invalid_grant")

    # An hour later the fresh one is unused for too long as well.
    assert registrations_prune(now=now + timedelta(seconds=120)) == 1
    assert not Application.objects.filter(pk=fresh.pk).exists()


def test_a_client_that_completed_the_flow_survives_pruning(live_url, acme):
    from django.conf import settings

    from authserver.registration import registrations_prune

    redirect = "https://claude.ai/api/mcp/auth_callback"
    client = registered_client(
        live_url, {"redirect_uris": [redirect], "token_endpoint_auth_method": "none", **CODE_ONLY}
    )
    idle = registered_client(
        live_url, {"redirect_uris": [redirect], "token_endpoint_auth_method": "none", **CODE_ONLY}
    )
    pkce = Pkce()
    connector = acme["connector"].url
    query = Browser("bob", "bob-pass-123").authorize(
        authorize_url(
            live_url,
            client_id=client["client_id"],
            redirect_uri=redirect,
            pkce=pkce,
            resource=connector,
        )
    )
    token = exchange_code(
        live_url,
        client=client,
        code=query["code"],
        redirect_uri=redirect,
        pkce=pkce,
        resource=connector,
    )
    assert token.status_code == 200

    later = timezone.now() + timedelta(seconds=settings.UNUSED_REGISTRATION_LIFETIME + 60)
    assert registrations_prune(now=later) == 1

    assert Application.objects.filter(client_id=client["client_id"]).exists()
    assert not Application.objects.filter(client_id=idle["client_id"]).exists()
    mcp = httpx.post(
        connector,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Authorization": f"Bearer {token.json()['access_token']}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-06-18",
        },
    )
    assert mcp.status_code == 200, mcp.text


# --- helpers --------------------------------------------------------------------------------------


def _json_type() -> dict:
    return {"Content-Type": "application/json"}


def _registered_app(live_url: str, *, created) -> Application:
    body = registered_client(live_url, VALID)
    Application.objects.filter(client_id=body["client_id"]).update(created=created)
    return Application.objects.get(client_id=body["client_id"])


def _port_other_than(*ports: int) -> int:
    while (port := free_port()) in ports:
        pass
    return port


def _sign_in(browser: Browser, live_url: str) -> None:
    """Sign ``browser`` in through the login form, so /authorize answers directly."""
    from tests.support.oauth import CSRF

    page = browser.http.get(f"{live_url}/accounts/login/")
    response = browser.http.post(
        f"{live_url}/accounts/login/",
        data={
            "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
            "username": browser.username,
            "password": browser.password,
        },
    )
    assert response.status_code == 302, response.text[:500]
