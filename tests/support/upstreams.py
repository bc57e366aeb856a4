"""Real MCP servers (the `mcp` SDK) that tests put behind a ``remote_mcp`` connector.

Each upstream serves the same notes tools at ``<base>/mcp``; what differs is who may call it:

- ``open``: no auth at all;
- ``api_key``: a static ``X-API-Key`` header, each key with its own notes;
- ``legacy_oauth``: built like a hand-rolled 2025-03-26 server: RFC 8414 metadata at the origin
  root, ``/authorize`` (its own sign-in page), ``/token``, ``/register`` (DCR), PKCE S256, no
  protected-resource metadata (its 401 says only ``Bearer``), refresh tokens that do not rotate;
- ``modern_oauth``: protected-resource metadata (401 ``resource_metadata``, path-inserted),
  metadata announcing client ID metadata documents, CIMD and DCR, ``resource`` required and
  checked, refresh tokens that rotate (a spent one is ``invalid_grant``).

The test holds the ``Upstream`` object and can revoke every grant, expire access tokens, count
token requests, or stop the server.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import anyio
import httpx
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve, Sample
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import (
    CallToolResult,
    CreateMessageResult,
    EmbeddedResource,
    ImageContent,
    SamplingMessage,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
    ToolListChangedNotification,
)
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tests.support.live import LiveServer

USER_KEY = "test_upstream.user"
READ = ToolAnnotations(readOnlyHint=True)
# 1x1 transparent PNG
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


@dataclass
class Grant:
    user: str
    client_id: str
    resource: str | None
    refresh_token: str
    scope: str = "notes"


@dataclass
class Upstream:
    """One running upstream server and the knobs a test turns."""

    auth: str  # open | api_key | legacy_oauth | modern_oauth
    users: dict[str, str] = field(default_factory=dict)  # username -> password (oauth)
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> owner (api_key)
    access_ttl: int = 3600
    stateless: bool = False
    # Speaks only the initialize handshake (2025-11-25 and older), like servers built before
    # 2026-07-28: a request in the per-request envelope gets the 400 such servers answer.
    legacy_only: bool = False
    server: LiveServer | None = None
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    clients: dict[str, dict] = field(default_factory=dict)
    codes: dict[str, dict] = field(default_factory=dict)
    access_tokens: dict[str, tuple[Grant, float]] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict] = field(default_factory=list)
    mcp_requests: list[dict] = field(default_factory=list)
    root_metadata: bool = True  # legacy_oauth: serve RFC 8414 metadata (else defaults only)
    delay: float = 0.0  # seconds every MCP request waits before it is served
    fail_with: int | None = None  # an HTTP status every MCP request gets instead
    # modern_oauth: the authorization server its protected-resource metadata names (else itself)
    authorization_server: str | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    # -- knobs --------------------------------------------------------------------------------
    def revoke_all(self) -> None:
        """The upstream's admin revoked every grant: tokens and refresh tokens stop working."""
        self.access_tokens.clear()
        self.refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        self.access_tokens = {t: (g, 0.0) for t, (g, _) in self.access_tokens.items()}

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    # -- identity -----------------------------------------------------------------------------
    def caller(self, headers: dict[str, str]) -> str | None:
        """Who the request is from, or None when it must be refused."""
        if self.auth == "open":
            return "anonymous"
        if self.auth == "api_key":
            return self.api_keys.get(headers.get("x-api-key", ""))
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        entry = self.access_tokens.get(token.strip())
        if entry is None or entry[1] < time.time():
            return None
        grant = entry[0]
        if self.auth == "modern_oauth" and grant.resource != self.url:
            return None
        return grant.user

    def challenge(self) -> str:
        if self.auth == "modern_oauth":
            return (
                f'Bearer resource_metadata="{self.base}/.well-known/oauth-protected-resource/mcp"'
                ', scope="notes"'
            )
        if self.auth == "api_key":
            return 'ApiKey realm="notes"'
        return "Bearer"

    def _issue(self, grant: Grant) -> dict:
        access = secrets.token_urlsafe(24)
        self.access_tokens[access] = (grant, time.time() + self.access_ttl)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "refresh_token": grant.refresh_token,
            "scope": grant.scope,
        }


class Name(BaseModel):
    name: str


def _ask_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


def _ask_model(topic: str) -> Sample:
    prompt = TextContent(type="text", text=f"Write a haiku about {topic}.")
    return Sample([SamplingMessage(role="user", content=prompt)], max_tokens=50)


def _server(upstream: Upstream) -> MCPServer:
    server = MCPServer("notes", instructions="A notes server used as a test upstream.")

    def who(ctx: Context) -> str:
        return ctx.request_context.request.scope[USER_KEY]

    @server.tool(annotations=READ)
    def whoami(ctx: Context) -> str:
        """The upstream account this call runs as."""
        return who(ctx)

    @server.tool(annotations=READ)
    def list_notes(ctx: Context) -> list[str]:
        """The caller's notes."""
        return list(upstream.notes[who(ctx)])

    @server.tool()
    def add_note(text: str, ctx: Context) -> str:
        """Add a note (a write: no readOnlyHint)."""
        upstream.notes[who(ctx)].append(text)
        return f"added {text!r}"

    @server.tool(annotations=READ)
    def rich(ctx: Context) -> CallToolResult:
        """Content of several types and structured content."""
        return CallToolResult(
            content=[
                TextContent(type="text", text="three blocks"),
                ImageContent(type="image", data=PIXEL, mimeType="image/png"),
                EmbeddedResource(
                    type="resource",
                    resource=TextResourceContents(
                        uri="notes://readme", mimeType="text/plain", text="readme"
                    ),
                ),
            ],
            structuredContent={"count": 3, "caller": who(ctx)},
        )

    @server.tool(annotations=READ)
    def fail(message: str) -> str:
        """Always fails (a tool error, isError)."""
        raise ToolError(message)

    @server.tool(annotations=READ)
    async def slow(seconds: float) -> str:
        """Answers after ``seconds``."""
        await anyio.sleep(seconds)
        return "done"

    @server.tool(annotations=READ)
    async def unlock_extra(ctx: Context) -> str:
        """Adds a tool named ``extra`` and says so (notifications/tools/list_changed)."""
        if "extra" not in {t.name for t in await server.list_tools()}:
            server.add_tool(lambda: "extra!", name="extra", annotations=READ)
        # On this request's stream, where a client that holds no GET stream sees it.
        await ctx.session.send_notification(
            ToolListChangedNotification(), related_request_id=ctx.request_id
        )
        return "unlocked"

    @server.tool(annotations=READ)
    async def count(steps: int, ctx: Context) -> str:
        """Reports progress at each step (when asked for) and logs when done."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step} of {steps}")
        await ctx.info(f"counted to {steps}")
        return f"counted to {steps}"

    # Elicitation and sampling the SDK's way: a request mid-call to clients of the handshake
    # generations, the input-required round trip with 2026-07-28 clients.
    @server.tool(annotations=READ)
    def greet(name: Annotated[Name, Resolve(_ask_name)]) -> str:
        """Asks the user their name (elicitation/create)."""
        return f"hello {name.name}"

    @server.tool(annotations=READ)
    def haiku(topic: str, written: Annotated[CreateMessageResult, Resolve(_ask_model)]) -> str:
        """Asks the client's model for a haiku (sampling/createMessage)."""
        return f"the client's model wrote: {written.content.text}"

    @server.resource("notes://readme", mime_type="text/plain")
    def readme() -> str:
        return "The notes server keeps notes."

    @server.prompt()
    def summarize(topic: str) -> str:
        """Ask for a summary."""
        return f"Summarize the notes about {topic}."

    return server


class _Guard:
    """ASGI wrapper: the MCP endpoint needs a known caller; everything else passes."""

    def __init__(self, app, upstream: Upstream) -> None:
        self.app = app
        self.upstream = upstream

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/mcp":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.upstream.mcp_requests.append(
            {
                "method": scope["method"],
                "session": headers.get("mcp-session-id"),
                "caller": self.upstream.caller(headers),
            }
        )
        if self.upstream.delay:
            await anyio.sleep(self.upstream.delay)
        if self.upstream.legacy_only and headers.get("mcp-protocol-version") == "2026-07-28":
            response = JSONResponse(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "Bad Request: Missing session ID"},
                },
                status_code=400,
            )
            await response(scope, receive, send)
            return
        if self.upstream.fail_with:
            response = JSONResponse({"error": "broken"}, status_code=self.upstream.fail_with)
            await response(scope, receive, send)
            return
        user = self.upstream.caller(headers)
        if user is None:
            response = JSONResponse(
                {"error": "invalid_token", "error_description": "who are you?"},
                status_code=401,
                headers={"WWW-Authenticate": self.upstream.challenge()},
            )
            await response(scope, receive, send)
            return
        await self.app({**scope, USER_KEY: user}, receive, send)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _oauth_routes(server: MCPServer, upstream: Upstream) -> None:
    modern = upstream.auth == "modern_oauth"

    def metadata() -> dict:
        base = upstream.base
        document = {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "registration_endpoint": f"{base}/register",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
            "scopes_supported": ["notes"],
        }
        if modern:
            document["client_id_metadata_document_supported"] = True
            document["revocation_endpoint"] = f"{base}/revoke"
        return document

    @server.custom_route("/.well-known/oauth-authorization-server", methods=["GET"])
    async def as_metadata(request: Request) -> Response:
        if not upstream.root_metadata:
            return HTMLResponse("<h1>Not Found</h1>", status_code=404)
        return JSONResponse(metadata())

    if modern:

        @server.custom_route("/.well-known/oauth-protected-resource/mcp", methods=["GET"])
        async def prm(request: Request) -> Response:
            return JSONResponse(
                {
                    "resource": upstream.url,
                    "authorization_servers": [upstream.authorization_server or upstream.base],
                    "scopes_supported": ["notes"],
                }
            )

    @server.custom_route("/register", methods=["POST"])
    async def register(request: Request) -> Response:
        body = await request.json()
        if not body.get("redirect_uris"):
            return JSONResponse({"error": "invalid_redirect_uri"}, status_code=400)
        client_id = "dcr-" + secrets.token_urlsafe(8)
        secret = None
        if body.get("token_endpoint_auth_method", "client_secret_basic") != "none":
            secret = secrets.token_urlsafe(16)
            body["token_endpoint_auth_method"] = "client_secret_post"
        upstream.clients[client_id] = {**body, "client_secret": secret}
        answer = {**body, "client_id": client_id}
        if secret:
            answer["client_secret"] = secret
        return JSONResponse(answer, status_code=201)

    async def client_of(client_id: str) -> dict | None:
        if client_id in upstream.clients:
            return upstream.clients[client_id]
        if modern and client_id.startswith(("https://", "http://")):
            async with httpx.AsyncClient(timeout=5) as http:
                response = await http.get(client_id)
            if response.status_code != 200:
                return None
            document = response.json()
            if document.get("client_id") != client_id:
                return None
            return {**document, "client_secret": None, "cimd": True}
        return None

    def sign_in_page(query: str, error: str = "") -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><title>Notes: sign in</title><h1>Sign in to Notes</h1>"
            f"<p class=error>{html.escape(error)}</p>"
            f'<form method="post" action="/authorize?{html.escape(query)}">'
            '<input name="username"><input name="password" type="password">'
            "<button>Sign in and allow</button></form>",
            status_code=400 if error else 200,
        )

    @server.custom_route("/authorize", methods=["GET", "POST"])
    async def authorize(request: Request) -> Response:
        query = request.query_params
        client = await client_of(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or redirect_uri not in client.get("redirect_uris", []):
            return HTMLResponse("<h1>Unknown client or redirect URI</h1>", status_code=400)

        def back(**params) -> RedirectResponse:
            params["state"] = query.get("state", "")
            return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 required")
        if modern and query.get("resource") != upstream.url:
            return back(error="invalid_target", error_description="resource must be the MCP URL")
        if request.method == "GET":
            return sign_in_page(str(request.url.query))
        form = await request.form()
        username = str(form.get("username", ""))
        if upstream.users.get(username) != form.get("password") or not username:
            return sign_in_page(str(request.url.query), "Wrong username or password")
        if form.get("deny"):
            return back(error="access_denied")
        code = secrets.token_urlsafe(16)
        upstream.codes[code] = {
            "user": username,
            "client_id": query["client_id"],
            "redirect_uri": redirect_uri,
            "challenge": query["code_challenge"],
            "resource": query.get("resource"),
        }
        return back(code=code)

    def token_error(error: str, description: str, status: int = 400) -> JSONResponse:
        return JSONResponse(
            {"error": error, "error_description": description},
            status_code=status,
            headers={"Cache-Control": "no-store"},
        )

    @server.custom_route("/token", methods=["POST"])
    async def token(request: Request) -> Response:
        form = dict(await request.form())
        upstream.token_requests.append({k: v for k, v in form.items() if "secret" not in k})
        client = await client_of(form.get("client_id", ""))
        if client is None or (
            client.get("client_secret") and form.get("client_secret") != client["client_secret"]
        ):
            return token_error("invalid_client", "unknown client or wrong secret", 401)
        if form.get("grant_type") == "authorization_code":
            entry = upstream.codes.pop(form.get("code", ""), None)
            if entry is None or entry["client_id"] != form["client_id"]:
                return token_error("invalid_grant", "unknown or used code")
            if entry["redirect_uri"] != form.get("redirect_uri"):
                return token_error("invalid_grant", "redirect_uri differs")
            if _s256(form.get("code_verifier", "")) != entry["challenge"]:
                return token_error("invalid_grant", "PKCE verification failed")
            if modern and form.get("resource") != upstream.url:
                return token_error("invalid_target", "resource must be the MCP URL")
            grant = Grant(
                user=entry["user"],
                client_id=entry["client_id"],
                resource=entry["resource"],
                refresh_token=secrets.token_urlsafe(24),
            )
            upstream.refresh_tokens[grant.refresh_token] = grant
            return JSONResponse(upstream._issue(grant), headers={"Cache-Control": "no-store"})
        if form.get("grant_type") == "refresh_token":
            grant = upstream.refresh_tokens.get(form.get("refresh_token", ""))
            if grant is None or grant.client_id != form["client_id"]:
                return token_error("invalid_grant", "refresh token unknown, spent or revoked")
            if modern:  # rotation: the spent one is dead from now on
                del upstream.refresh_tokens[grant.refresh_token]
                grant = Grant(
                    user=grant.user,
                    client_id=grant.client_id,
                    resource=grant.resource,
                    refresh_token=secrets.token_urlsafe(24),
                )
                upstream.refresh_tokens[grant.refresh_token] = grant
            return JSONResponse(upstream._issue(grant), headers={"Cache-Control": "no-store"})
        return token_error("unsupported_grant_type", "authorization_code or refresh_token")

    if modern:

        @server.custom_route("/revoke", methods=["POST"])
        async def revoke(request: Request) -> Response:
            form = await request.form()
            value = str(form.get("token", ""))
            grant = upstream.refresh_tokens.pop(value, None)
            upstream.access_tokens.pop(value, None)
            if grant is not None:
                upstream.access_tokens = {
                    t: e for t, e in upstream.access_tokens.items() if e[0] is not grant
                }
            return Response(status_code=200)


def start_upstream(auth: str = "open", **options) -> Upstream:
    """Start an upstream on a free loopback port; ``upstream.stop()`` ends it."""
    if auth == "legacy_oauth":
        options.setdefault("legacy_only", True)
    upstream = Upstream(auth=auth, **options)
    server = _server(upstream)
    if auth in ("legacy_oauth", "modern_oauth"):
        _oauth_routes(server, upstream)
    app = server.streamable_http_app(
        stateless_http=upstream.stateless,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    upstream.server = LiveServer()
    upstream.server.start(_Guard(app, upstream), lifespan="on")
    return upstream


def upstream_sign_in(authorize_url: str, username: str, password: str) -> dict[str, str]:
    """A person at the upstream's own sign-in page: returns the query of the redirect back."""
    with httpx.Client() as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        action = FORM_ACTION.search(page.text).group(1)
        response = browser.post(
            urljoin(authorize_url, html.unescape(action)),
            data={"username": username, "password": password},
        )
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
