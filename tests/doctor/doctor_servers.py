"""A small MCP authorization setup (Starlette) that is correct unless told to break one thing.

``fault`` names the one way it breaks, each one seen in real deployments (CLIENTS.md):

- ``no_prm``: the 401 has no resource_metadata and the well-known URL is a 404
- ``append_slash``: the MCP POST gets a 301 to the same path with a trailing slash
- ``html_discovery``: a catch-all page answers /.well-known/oauth-authorization-server with
  HTML and status 200 (the metadata is only at openid-configuration)
- ``issuer_slash``: the metadata's issuer has a trailing slash the PRM's URL lacks
- ``refuse_claude``: registration refuses redirect URIs on https://claude.ai
- ``forbidden``: CSRF middleware answers the MCP POST with 403
- ``open_stream``: no auth at all; initialize is answered with an event stream that stays open
- ``wrong_origin``: every advertised URL says http://localhost:PORT while clients use
  http://127.0.0.1:PORT (PUBLIC_URL set to another name of the server)
"""

import secrets
from contextlib import contextmanager
from urllib.parse import urlencode

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tests.support.live import free_port, serve_in_thread

FAULTS = {
    "no_prm",
    "append_slash",
    "html_discovery",
    "issuer_slash",
    "refuse_claude",
    "forbidden",
    "wrong_origin",
    "open_stream",
}
CSRF_PAGE = "<!doctype html><h1>Forbidden (403)</h1><p>CSRF verification failed. Request aborted."
SPA_PAGE = "<!doctype html><html><body><div id='root'></div><script src='/app.js'></script>"
SIGN_IN_PAGE = "<!doctype html><form method=post><input name=username><input name=password>"


def mcp_auth_app(base: str, fault: str | None = None) -> Starlette:
    """The app as served at ``base``; the MCP endpoint is ``base + "/mcp"``."""
    assert fault is None or fault in FAULTS, fault
    public = base.replace("127.0.0.1", "localhost") if fault == "wrong_origin" else base
    prm_url = f"{public}/.well-known/oauth-protected-resource/mcp"
    clients: dict[str, list[str]] = {}

    def metadata() -> dict:
        return {
            "issuer": f"{public}/" if fault == "issuer_slash" else public,
            "authorization_endpoint": f"{public}/authorize",
            "token_endpoint": f"{public}/token",
            "registration_endpoint": f"{public}/register",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],
            "scopes_supported": ["mcp"],
        }

    async def mcp(request: Request) -> Response:
        if fault == "append_slash":
            return RedirectResponse(f"{base}/mcp/", status_code=301)
        if fault == "forbidden":
            return HTMLResponse(CSRF_PAGE, status_code=403)
        if fault == "open_stream":
            return StreamingResponse(_open_stream(), media_type="text/event-stream")
        challenge = 'Bearer realm="mcp"'
        if fault != "no_prm":
            challenge = f'Bearer resource_metadata="{prm_url}", scope="mcp"'
        return JSONResponse(
            {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": challenge}
        )

    async def resource_metadata(request: Request) -> Response:
        if fault == "no_prm":
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(
            {
                "resource": f"{public}/mcp",
                "authorization_servers": [public],
                "scopes_supported": ["mcp"],
            }
        )

    async def oauth_metadata(request: Request) -> Response:
        if fault == "html_discovery":
            return HTMLResponse(SPA_PAGE)
        return JSONResponse(metadata())

    async def openid_configuration(request: Request) -> Response:
        if fault == "html_discovery":
            return JSONResponse(metadata())
        return JSONResponse({"error": "not_found"}, status_code=404)

    async def register(request: Request) -> Response:
        body = await request.json()
        uris = body.get("redirect_uris") or []
        refused = [
            u for u in uris if fault == "refuse_claude" and u.startswith("https://claude.ai")
        ]
        if refused:
            return JSONResponse(
                {
                    "error": "invalid_redirect_uri",
                    "error_description": f"Redirect URI host not allowed: {refused[0]}",
                },
                status_code=400,
            )
        client_id = secrets.token_urlsafe(12)
        clients[client_id] = uris
        return JSONResponse(
            {"client_id": client_id, **body, "client_id_issued_at": 0}, status_code=201
        )

    async def authorize(request: Request) -> Response:
        query = request.query_params
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in clients.get(query.get("client_id", ""), []):
            return HTMLResponse("<h1>Unknown client or redirect URI</h1>", status_code=400)
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            error = {"error": "invalid_request", "state": query.get("state", "")}
            return RedirectResponse(f"{redirect_uri}?{urlencode(error)}", status_code=302)
        return HTMLResponse(SIGN_IN_PAGE)

    async def token(request: Request) -> Response:
        return JSONResponse({"error": "invalid_grant"}, status_code=400)

    return Starlette(
        routes=[
            Route("/mcp", mcp, methods=["POST"]),
            Route("/.well-known/oauth-protected-resource/mcp", resource_metadata),
            Route("/.well-known/oauth-authorization-server", oauth_metadata),
            Route("/.well-known/openid-configuration", openid_configuration),
            Route("/register", register, methods=["POST"]),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["WWW-Authenticate", "Mcp-Session-Id"],
            )
        ],
    )


async def _open_stream():
    yield b'event: message\ndata: {"jsonrpc": "2.0", "id": 1, "result": {}}\n\n'
    for _ in range(300):  # a keep-alive every 0.1 s for 30 s: no read timeout ever fires
        await anyio.sleep(0.1)
        yield b": ping\n\n"


@contextmanager
def serving(fault: str | None = None):
    """Yield the MCP URL of a fresh server with ``fault``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve_in_thread(mcp_auth_app(base, fault), port, lifespan="off"):
        yield f"{base}/mcp"
