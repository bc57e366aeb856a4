"""Clients at both ends of the spec's history: CIMD (2025-11-25 on) and a 2025-03-26 client.

CIMD documents are served by a small Starlette app on loopback. A client id must be an https
URL (the SDK checks its shape, DOT refuses anything else); with the test-only setting
``CIMD_ALLOW_HTTP_LOOPBACK`` the platform's fetcher reads ``https://127.0.0.1:PORT/x.json``
over plain http from that loopback port. The SDK never fetches its own client id, so nothing
else about the flow changes: the server really fetches, validates and stores the document.
"""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
import urllib3
from django.utils import timezone
from oauth2_provider import cimd
from oauth2_provider.models import Application
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authserver.models import Consent
from events.models import Event
from tests.support.flow import stored_access_token
from tests.support.live import serve_in_thread
from tests.support.mcp_client import CLAUDE_REDIRECT, MemoryStorage, connected, oauth_provider
from tests.support.oauth import CSRF, Browser
from tests.support.pkce import Pkce, authorize_url, exchange_code, registered_client

# Tests that use ``live_url`` get a transactional database from it; the fetcher tests need none.

# --- a host for client ID metadata documents ------------------------------------------------------


@dataclass
class DocumentHost:
    """Serves ``documents[path]`` as JSON over http on loopback and records every request."""

    http_url: str = ""
    documents: dict = field(default_factory=dict)
    hits: list = field(default_factory=list)

    def client_id(self, path: str) -> str:
        """The https client id of a document here (fetched over http, loopback only)."""
        return self.http_url.replace("http://", "https://", 1) + path

    async def serve(self, request: Request) -> Response:
        self.hits.append(request.url.path)
        document = self.documents.get(request.url.path)
        if document is None:
            return Response(status_code=404)
        return JSONResponse(document, headers={"Cache-Control": "max-age=600"})


@pytest.fixture(scope="module")
def _document_server():
    host = DocumentHost()
    app = Starlette(routes=[Route("/{path:path}", host.serve)])
    with serve_in_thread(app, lifespan="off") as url:
        host.http_url = url
        yield host


@pytest.fixture
def documents(_document_server):
    _document_server.documents.clear()
    _document_server.hits.clear()
    return _document_server


def _claude_document(client_id: str, **overrides) -> dict:
    return {
        "client_id": client_id,
        "client_name": "Claude (CIMD)",
        "client_uri": "https://claude.ai",
        "redirect_uris": [CLAUDE_REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **overrides,
    }


@pytest.fixture
def no_outbound_fetch(monkeypatch):
    """Fail loudly if anything tries to fetch a CIMD document; return the attempts made.

    DOT's fetcher connects through ``urllib3.HTTPSConnectionPool``; the platform's loopback
    shortcut through ``httpx.get``. The live server runs in this process, so it sees these too.
    """
    attempts = []

    def pool(*args, **kwargs):
        attempts.append(("urllib3", kwargs.get("host") or args[:1]))
        raise AssertionError("a connection was attempted")

    def get(url, *args, **kwargs):
        attempts.append(("httpx", url))
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(urllib3, "HTTPSConnectionPool", pool)
    monkeypatch.setattr("authserver.registration.httpx.get", get)
    return attempts


# --- 5. CIMD --------------------------------------------------------------------------------------


def test_sdk_client_connects_with_a_client_id_metadata_document(live_url, acme, documents):
    url = acme["connector"].url
    client_id = documents.client_id("/oauth/claude-client.json")
    documents.documents["/oauth/claude-client.json"] = _claude_document(client_id)
    storage = MemoryStorage()
    browser = Browser("bob", "bob-pass-123")

    async def scenario():
        provider = oauth_provider(
            url, browser, storage, client_metadata_url=client_id, auth_method="none"
        )
        async with connected(url, provider) as client:
            result = await client.call_tool("whoami", {})
            return result.structured_content

    caller = anyio.run(scenario)

    # The SDK chose CIMD: its client id is the URL, and it never called /register.
    assert storage.client_info.client_id == client_id
    assert caller["client_id"] == client_id
    assert caller["user"] == "bob"
    assert not Event.objects.filter(kind="oauth.register").exists()
    assert not Application.objects.filter(
        registration_source=Application.RegistrationSource.DCR
    ).exists()
    # The server fetched the document and made a public client of it.
    assert "/oauth/claude-client.json" in documents.hits
    app = Application.objects.get(client_id=client_id)
    assert app.registration_source == Application.RegistrationSource.CIMD
    assert app.client_type == Application.CLIENT_PUBLIC
    assert app.name == "Claude (CIMD)"
    assert app.redirect_uris.split() == [CLAUDE_REDIRECT]
    token = stored_access_token(storage.tokens.access_token)
    assert token.application == app
    assert token.resource == [url]
    assert browser.last_redirect["iss"] == live_url


# (document for its own URL, whether the client is stored anyway)
BAD_DOCUMENTS = {
    # The document must name the URL it was fetched from, or anyone could impersonate a client.
    "client-id-mismatch": (
        lambda own_id: _claude_document(own_id.replace("bad.json", "claude.json")),
        False,
    ),
    # CIMD clients are public: a shared secret in a world-readable document is no secret.
    "secret-auth-method": (
        lambda own_id: _claude_document(own_id, token_endpoint_auth_method="client_secret_post"),
        False,
    ),
    # A redirect POST /register refuses (plain http off loopback) is refused in a document too.
    "plain-http-redirect": (
        lambda own_id: _claude_document(
            own_id, redirect_uris=[CLAUDE_REDIRECT, "http://attacker.example/cb"]
        ),
        False,
    ),
    # A valid document, but the redirect the request uses is not one it lists.
    "redirect-not-listed": (
        lambda own_id: _claude_document(own_id, redirect_uris=["https://elsewhere.example/cb"]),
        True,
    ),
}


@pytest.mark.parametrize(
    ("make_document", "stored"), BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys()
)
def test_authorize_with_an_unacceptable_document_errors_without_redirect(
    live_url, acme, documents, make_document, stored
):
    client_id = documents.client_id("/bad.json")
    documents.documents["/bad.json"] = make_document(client_id)
    browser = _signed_in(live_url, "bob", "bob-pass-123")

    response = browser.http.get(
        authorize_url(
            live_url,
            client_id=client_id,
            redirect_uri=CLAUDE_REDIRECT,
            pkce=Pkce(),
            resource=acme["connector"].url,
        )
    )

    assert documents.hits == ["/bad.json"]  # it was fetched, then refused
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "code=" not in response.text
    assert "not valid" in response.text
    assert Application.objects.filter(client_id=client_id).exists() is stored
    assert not Consent.objects.exists()


def test_consent_names_the_cimd_host_and_is_asked_again_when_the_document_changes(
    live_url, acme, documents
):
    client_id = documents.client_id("/claude.json")
    documents.documents["/claude.json"] = _claude_document(client_id)
    browser = Browser("bob", "bob-pass-123")

    def connect():
        return browser.authorize(
            authorize_url(
                live_url,
                client_id=client_id,
                redirect_uri=CLAUDE_REDIRECT,
                pkce=Pkce(),
                resource=acme["connector"].url,
            )
        )

    assert "code" in connect()
    consent = next(page for page in browser.pages if 'name="pending"' in page.text)
    # Who publishes the document, not only the name it gives itself.
    assert "Published by</dt><dd>127.0.0.1</dd>" in consent.text
    assert "code" in connect()  # remembered
    assert sum('name="pending"' in page.text for page in browser.pages) == 1

    # The document changes; once its cache expires the platform re-reads it.
    documents.documents["/claude.json"] = _claude_document(client_id, client_name="Claude 2")
    Application.objects.filter(client_id=client_id).update(cimd_expires_at=timezone.now())

    assert "code" in connect()
    consents = [page for page in browser.pages if 'name="pending"' in page.text]
    assert len(consents) == 2
    assert "Claude 2" in consents[-1].text


PRIVATE_CLIENT_IDS = [
    "https://10.0.0.1/client.json",
    "https://192.168.1.20:8443/oauth/client.json",
    "https://169.254.169.254/latest/meta-data/client.json",  # cloud metadata service
    "https://[fd00::1]/client.json",
    "https://[::ffff:10.0.0.1]/client.json",  # IPv4-mapped IPv6
]


@pytest.mark.parametrize("client_id", PRIVATE_CLIENT_IDS)
def test_ssrf_guard_refuses_private_addresses_without_connecting(
    client_id, no_outbound_fetch, settings
):
    from authserver.registration import CIMDFetcher

    with pytest.raises(cimd.CIMDError, match="non-public address"):
        CIMDFetcher().fetch(client_id)

    assert no_outbound_fetch == []


def test_ssrf_guard_refuses_a_name_resolving_to_a_private_address(no_outbound_fetch, monkeypatch):
    """DNS is consulted once and every answer must be public (no split public/private result)."""
    from authserver.registration import CIMDFetcher

    asked = []

    class FakeSocket:
        IPPROTO_TCP = 6
        gaierror = OSError

        @staticmethod
        def getaddrinfo(host, port, **kwargs):
            asked.append(host)
            return [(2, 1, 6, "", ("93.184.215.14", port)), (2, 1, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(cimd, "socket", FakeSocket)

    with pytest.raises(cimd.CIMDError, match="non-public address"):
        CIMDFetcher().fetch("https://clients.example.com/app.json")

    assert asked == ["clients.example.com"]
    assert no_outbound_fetch == []


def test_loopback_is_refused_too_when_the_test_switch_is_off(
    documents, no_outbound_fetch, settings
):
    """``CIMD_ALLOW_HTTP_LOOPBACK`` (tests only) is the one hole: without it DOT's guard holds."""
    from authserver.registration import CIMDFetcher

    settings.CIMD_ALLOW_HTTP_LOOPBACK = False
    client_id = documents.client_id("/client.json")
    documents.documents["/client.json"] = _claude_document(client_id)

    with pytest.raises(cimd.CIMDError, match="non-public address"):
        CIMDFetcher().fetch(client_id)

    assert no_outbound_fetch == []
    assert documents.hits == []


def test_authorize_with_a_private_cimd_url_is_refused_and_nothing_is_fetched(
    live_url, acme, no_outbound_fetch
):
    client_id = "https://10.0.0.1/client.json"
    browser = _signed_in(live_url, "bob", "bob-pass-123")

    response = browser.http.get(
        authorize_url(
            live_url,
            client_id=client_id,
            redirect_uri=CLAUDE_REDIRECT,
            pkce=Pkce(),
            resource=acme["connector"].url,
        )
    )

    assert response.status_code == 400
    assert "location" not in response.headers
    assert no_outbound_fetch == []
    assert not Application.objects.filter(client_id=client_id).exists()


# --- 6. A 2025-03-26 client ---------------------------------------------------------------------

LEGACY_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-03-26",
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-03-26",
        "capabilities": {},
        "clientInfo": {"name": "legacy-client", "version": "0.1"},
    },
}


def test_2025_03_26_client_without_resource_chooses_connector_on_consent(live_url, acme):
    from tenants.services import connector_create

    notes = connector_create(tenant=acme["tenant"], kind="echo", slug="notes")
    echo, other_tenant = acme["connector"], acme["other_connector"]

    # The client calls the MCP endpoint, gets 401 and ignores its resource_metadata hint.
    first = httpx.post(notes.url, json=INITIALIZE, headers=LEGACY_HEADERS)
    assert first.status_code == 401

    # It drops the path and reads the authorization server metadata at the origin root.
    parts = urlsplit(notes.url)
    origin = f"{parts.scheme}://{parts.netloc}"
    metadata = httpx.get(f"{origin}/.well-known/oauth-authorization-server").json()
    assert metadata["registration_endpoint"] == f"{origin}/register"
    assert metadata["authorization_endpoint"] == f"{origin}/authorize"
    assert metadata["token_endpoint"] == f"{origin}/token"

    redirect = "http://localhost:3334/oauth/callback"
    client = registered_client(
        origin,
        {
            "client_name": "Legacy MCP client",
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    )

    # No resource and no scope: the user picks the connector on the consent page.
    pkce = Pkce()
    browser = Browser("bob", "bob-pass-123", connector_id=notes.pk)
    query = browser.authorize(
        authorize_url(
            origin,
            client_id=client["client_id"],
            redirect_uri=redirect,
            pkce=pkce,
            resource=None,
            scope=None,
        )
    )
    consent = next(page for page in browser.pages if 'name="connector"' in page.text)
    assert notes.url in consent.text and echo.url in consent.text
    assert other_tenant.url not in consent.text  # bob is not a member of globex
    assert query["_redirect"] == redirect
    assert query["iss"] == live_url

    token = exchange_code(
        origin,
        client=client,
        code=query["code"],
        redirect_uri=redirect,
        pkce=pkce,
        resource=None,
    )
    assert token.status_code == 200, token.text
    tokens = token.json()
    assert tokens["scope"] == "mcp"
    assert tokens["refresh_token"]
    bearer = {**LEGACY_HEADERS, "Authorization": f"Bearer {tokens['access_token']}"}

    # The token works at the chosen connector...
    initialized = httpx.post(notes.url, json=INITIALIZE, headers=bearer)
    assert initialized.status_code == 200, initialized.text
    assert initialized.json()["result"]["protocolVersion"] == "2025-03-26"
    session = {
        k: v for k, v in initialized.headers.items() if k.lower() == "mcp-session-id"
    }  # stateless servers send none; echo it if one came
    listed = httpx.post(
        notes.url,
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        headers={**bearer, **session},
    )
    assert listed.status_code == 200, listed.text
    assert {"echo", "whoami"} <= {tool["name"] for tool in listed.json()["result"]["tools"]}
    called = httpx.post(
        notes.url,
        json={
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}},
        },
        headers={**bearer, **session},
    )
    assert called.json()["result"]["structuredContent"]["connector"] == "notes"

    # ...and nowhere else: not the tenant's other connector, not another tenant's.
    for elsewhere in (echo.url, other_tenant.url):
        refused = httpx.post(elsewhere, json=INITIALIZE, headers=bearer)
        assert refused.status_code == 401, elsewhere
        assert refused.json()["error"] == "invalid_token"
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]


# --- helpers --------------------------------------------------------------------------------------


def _signed_in(live_url: str, username: str, password: str) -> Browser:
    """A browser signed in through the login form, so /authorize answers it directly."""
    browser = Browser(username, password)
    page = browser.http.get(f"{live_url}/accounts/login/")
    response = browser.http.post(
        f"{live_url}/accounts/login/",
        data={
            "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
            "username": username,
            "password": password,
        },
    )
    assert response.status_code == 302, response.text[:500]
    return browser
