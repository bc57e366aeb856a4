"""Steps that act as the clients do: register (Claude, Cursor, VS Code), open /authorize, the
browser's CORS requests, and removing the registrations afterwards."""

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from doctor.findings import Findings, Registration
from doctor.first_request import INITIALIZE, MCP_HEADERS
from doctor.steps import Verdict, failed, passed, skipped, warned
from doctor.wire import (
    BROWSER_ORIGIN,
    body_excerpt,
    is_html,
    location_of,
    oauth_error_text,
    origin_of,
    send,
    send_bounded,
)


@dataclass(frozen=True)
class ClientShape:
    """A client's registration request as it sends it (CLIENTS.md)."""

    client_name: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    redirect_advice: str


CLAUDE = ClientShape(
    "Claude",
    ("https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"),
    # Claude asks for client_secret_post and then uses what the registration answer says.
    "client_secret_post",
    "Accept https redirect URIs on any host (claude.ai and claude.com), and accept "
    "client_secret_post or answer with the auth method you support.",
)
CURSOR = ClientShape(
    "Cursor",
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "https://www.cursor.com/agents/mcp/oauth/callback",
        "http://localhost:8787/callback",
    ),
    "none",
    "Accept all three at once (rejecting one fails Cursor's whole registration): the cursor:// "
    "custom scheme, https on any host, and http on loopback (RFC 8252).",
)
VSCODE = ClientShape(
    "Visual Studio Code",
    ("http://127.0.0.1/", "http://127.0.0.1:33418/", "https://vscode.dev/redirect"),
    "none",
    "Accept http on loopback with and without a port, and match loopback redirect URIs on any "
    "port at /authorize (RFC 8252): VS Code moves off 33418 when it is busy.",
)
GRANT_TYPES = ["authorization_code", "refresh_token"]
CUSTOM_CLIENT_NAME = "Custom client"


def custom_shape(redirect_uris: list[str]) -> ClientShape:
    """The client of ``--redirect-uri``: a public client with those redirect URIs."""
    return ClientShape(
        CUSTOM_CLIENT_NAME, tuple(redirect_uris), "none", "Accept these redirect URIs."
    )


# --- registration --------------------------------------------------------------------------------


def check_registration(findings: Findings, shape: ClientShape) -> Verdict:
    """RFC 7591 registration with the client's own redirect URIs, name and auth method."""
    endpoint = findings.endpoint("registration")
    if not endpoint:
        if (findings.metadata or {}).get("client_id_metadata_document_supported") is True:
            return skipped("no registration_endpoint: clients use CIMD instead")
        return skipped("no registration endpoint (see the discovery steps)")
    request = {
        # Marked as the doctor's so operators can tell these registrations apart.
        "client_name": f"{shape.client_name} (connection doctor)",
        "redirect_uris": list(shape.redirect_uris),
        "grant_types": GRANT_TYPES,
        "response_types": ["code"],
        "token_endpoint_auth_method": shape.token_endpoint_auth_method,
    }
    exchange = send(
        findings.http, "POST", endpoint, json=request, headers={"Accept": "application/json"}
    )
    response = exchange.response
    if response is None:
        return failed(
            f"{endpoint}: no answer: {exchange.error}", "Check the registration endpoint."
        )
    if response.is_redirect:
        return failed(
            f"{endpoint}: HTTP {response.status_code} redirect to {location_of(response)}",
            "Serve registration at the advertised registration_endpoint; never redirect a POST.",
        )
    if response.status_code not in (200, 201):
        fix = shape.redirect_advice
        if response.status_code == 429:
            fix = "Raise the registration rate limit: Claude registers on every new connection."
        return failed(
            f"{shape.client_name}'s registration refused: HTTP {response.status_code} "
            f"{oauth_error_text(response)}",
            fix,
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not body.get("client_id"):
        return failed(
            f"{endpoint}: HTTP {response.status_code} without a client_id: "
            f"{body_excerpt(response)}",
            "Answer a registration with the RFC 7591 JSON, client_id included.",
        )
    findings.registrations.append(
        Registration(shape.client_name, endpoint, list(shape.redirect_uris), body)
    )
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    detail = (
        f"client_id {body['client_id']}, token_endpoint_auth_method {method} "
        "(a test registration: see cleanup)"
    )
    echoed = body.get("redirect_uris")
    if isinstance(echoed, list) and sorted(echoed) != sorted(shape.redirect_uris):
        return warned(
            f"{detail}; the server registered other redirect URIs: {echoed}",
            "Register the redirect URIs exactly as sent.",
        )
    supported = (findings.metadata or {}).get("token_endpoint_auth_methods_supported")
    if isinstance(supported, list) and method not in supported:
        return warned(
            f"{detail}; {method} is not in token_endpoint_auth_methods_supported {supported}",
            "Answer with an auth method the token endpoint accepts: clients use the one the "
            "registration answer names.",
        )
    return passed(detail)


# --- /authorize ----------------------------------------------------------------------------------


def check_authorize(findings: Findings) -> Verdict:
    """A well-formed request from a fresh client must reach a sign-in page, not an error."""
    endpoint = findings.endpoint("authorization")
    if not endpoint:
        return skipped("no authorization endpoint (see the discovery steps)")
    registration = _registration_for_authorize(findings)
    if registration is None:
        return skipped("no client could register (see the register steps)")
    redirect_uri = registration.redirect_uris[0]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code",
        "client_id": registration.response["client_id"],
        "redirect_uri": redirect_uri,
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
        "state": secrets.token_urlsafe(16),
        "resource": findings.url,
    }
    scope = _scope(findings)
    if scope:
        params["scope"] = scope
    url = f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"
    as_client = f"as {registration.client_name} (redirect_uri {redirect_uri})"
    exchange = send(findings.http, "GET", url)
    response = exchange.response
    if response is None:
        return failed(
            f"{endpoint}: no answer: {exchange.error}", "Check the authorization endpoint."
        )
    if response.is_redirect:
        location = location_of(response)
        query = parse_qs(urlsplit(location).query)
        if "error" in query:
            error = query["error"][0]
            description = query.get("error_description", [""])[0]
            return failed(
                f"{as_client}: redirected with error={error} {description}".rstrip(),
                _authorize_fix(error, findings),
            )
        if origin_of(location) != origin_of(endpoint):
            return passed(f"{as_client}: redirects to {origin_of(location)} to sign in")
        page = send(findings.http, "GET", location).response
        if page is None or page.status_code >= 400:
            status = "no answer" if page is None else f"HTTP {page.status_code}"
            return failed(
                f"{as_client}: redirects to {location}, which answers {status}",
                "The sign-in page the authorization endpoint sends users to must load.",
            )
        return passed(f"{as_client}: redirects to the sign-in page {location.split('?')[0]}")
    if response.status_code >= 400:
        text = oauth_error_text(response)
        error = text.split(":", 1)[0].strip() if ":" in text else ""
        return failed(
            f"{as_client}: HTTP {response.status_code}: {text}", _authorize_fix(error, findings)
        )
    if 200 <= response.status_code < 300 and is_html(response):
        return passed(f"{as_client}: HTTP {response.status_code}, a sign-in page")
    return warned(
        f"{as_client}: HTTP {response.status_code} {body_excerpt(response, 120)}",
        "Answer /authorize with a sign-in page (HTML) or a redirect to one.",
    )


def _registration_for_authorize(findings: Findings) -> Registration | None:
    """A custom --redirect-uri client first (the user asked about it), else Claude's, ..."""
    custom = [r for r in findings.registrations if r.client_name == CUSTOM_CLIENT_NAME]
    return (custom or findings.registrations or [None])[0]


def _scope(findings: Findings) -> str:
    if findings.challenge and findings.challenge.get("scope"):
        return findings.challenge["scope"]
    scopes = (findings.resource_metadata or {}).get("scopes_supported")
    if isinstance(scopes, list):
        return " ".join(s for s in scopes if isinstance(s, str) and s != "offline_access")
    return ""


def _authorize_fix(error: str, findings: Findings) -> str:
    fixes = {
        "invalid_target": f"Accept resource={findings.url} (RFC 8707): the MCP URL exactly as "
        "clients use it.",
        "invalid_scope": "Accept the scope the 401 or the resource metadata advertises.",
        "unauthorized_client": "A client registered a moment ago must be usable at once.",
        "invalid_client": "A client registered a moment ago must be usable at once.",
        "invalid_request": "Accept a request with PKCE S256, resource, state and a registered "
        "redirect_uri (loopback ones on any port).",
    }
    return fixes.get(
        error,
        "The authorization endpoint must accept a request from a freshly registered client "
        "(PKCE S256, resource, state) and show a sign-in page.",
    )


# --- CORS ----------------------------------------------------------------------------------------

BROWSER_CLIENTS = "browser-based clients (MCP Inspector, web apps) cannot connect"


def check_cors_preflight(findings: Findings) -> Verdict:
    """The preflights a browser sends before calling the MCP URL, the metadata and /token."""
    targets = [
        ("MCP endpoint", findings.url, "POST", "authorization, content-type, mcp-protocol-version"),
        ("resource metadata", findings.resource_metadata_url, "GET", ""),
        ("authorization-server metadata", findings.metadata_url, "GET", ""),
        ("token endpoint", findings.endpoint("token"), "POST", "content-type"),
    ]
    problems, answered = [], []
    for label, url, method, headers in targets:
        if not url:
            continue
        request_headers = {"Origin": BROWSER_ORIGIN, "Access-Control-Request-Method": method}
        if headers:
            request_headers["Access-Control-Request-Headers"] = headers
        response = send(findings.http, "OPTIONS", url, headers=request_headers).response
        if url == findings.url and _origin_refused(response):
            answered.append(f"{label} (refuses Origin {BROWSER_ORIGIN}: {ORIGIN_LIST})")
            continue
        problem = _preflight_problem(response, headers)
        if problem:
            problems.append(f"{label} ({url}): {problem}")
        else:
            answered.append(label)
    if problems:
        return warned(
            f"{BROWSER_CLIENTS}: " + "; ".join(problems),
            "Answer OPTIONS preflights with Access-Control-Allow-Origin (any origin is fine: "
            "these endpoints take no cookies), Access-Control-Allow-Methods and "
            "Access-Control-Allow-Headers: Authorization, Content-Type, Mcp-Protocol-Version.",
        )
    return passed(f"preflights answered for {', '.join(answered)} (Origin {BROWSER_ORIGIN})")


# The MCP transport's defence against DNS rebinding: a server MUST answer 403 to an Origin it
# does not accept. That is the operator's list, not a CORS mistake.
ORIGIN_LIST = (
    "the server accepts only the browser origins its operator lists; a client served from "
    "another origin needs it added there"
)


def _origin_refused(response) -> bool:
    return response is not None and response.status_code == 403


def _preflight_problem(response, requested_headers: str) -> str:
    if response is None:
        return "no answer"
    if response.status_code >= 400:
        return f"HTTP {response.status_code}"
    allowed_origin = response.headers.get("access-control-allow-origin", "")
    if allowed_origin not in ("*", BROWSER_ORIGIN):
        return f"Access-Control-Allow-Origin is {allowed_origin or 'missing'}"
    allowed = {
        h.strip().lower()
        for h in response.headers.get("access-control-allow-headers", "").split(",")
    }
    missing = []
    for header in (h.strip() for h in requested_headers.split(",")):
        # "*" does not cover Authorization (Fetch standard).
        wildcard = "*" in allowed and header != "authorization"
        if header and header not in allowed and not wildcard:
            missing.append(header)
    if missing:
        return f"Access-Control-Allow-Headers lacks {', '.join(missing)}"
    return ""


def check_cors_401(findings: Findings) -> Verdict:
    """A browser reads the 401's WWW-Authenticate only if the server exposes it."""
    first = findings.unauthenticated
    if first is None or first.status_code != 401:
        return skipped("the token-less POST did not get a 401 (see unauthenticated_post)")
    headers = {**MCP_HEADERS, "Origin": BROWSER_ORIGIN}
    exchange = send_bounded(findings.http, "POST", findings.url, json=INITIALIZE, headers=headers)
    response = exchange.response
    if response is None:
        return warned("no answer to the POST with an Origin header", "Check the server's logs.")
    if _origin_refused(response):
        return passed(f"HTTP 403 for Origin {BROWSER_ORIGIN}: {ORIGIN_LIST}")
    allowed_origin = response.headers.get("access-control-allow-origin", "")
    exposed = {
        h.strip().lower()
        for h in response.headers.get("access-control-expose-headers", "").split(",")
    }
    problems = []
    if allowed_origin not in ("*", BROWSER_ORIGIN):
        problems.append(f"Access-Control-Allow-Origin is {allowed_origin or 'missing'}")
    if "www-authenticate" not in exposed and "*" not in exposed:
        problems.append("WWW-Authenticate is not in Access-Control-Expose-Headers")
    if problems:
        return warned(
            f"{BROWSER_CLIENTS}: on the 401 " + "; ".join(problems),
            "Send Access-Control-Allow-Origin and Access-Control-Expose-Headers: "
            "WWW-Authenticate, Mcp-Session-Id on the MCP endpoint's responses.",
        )
    return passed(
        f"HTTP {response.status_code} with Access-Control-Allow-Origin {allowed_origin}"
        " and WWW-Authenticate exposed"
    )


# --- cleanup -------------------------------------------------------------------------------------


def check_cleanup(findings: Findings) -> Verdict:
    """Delete the doctor's registrations where the server allows it (RFC 7592).

    The registration access token goes back only to the origin that issued it; nothing else the
    doctor did (no sign-in, no code, no token) leaves state on the server.
    """
    if not findings.registrations:
        return passed("nothing to remove: the doctor signed in nowhere and holds no tokens")
    deleted, left = [], []
    for registration in findings.registrations:
        response = registration.response
        uri = response.get("registration_client_uri")
        token = response.get("registration_access_token")
        if (
            isinstance(uri, str)
            and isinstance(token, str)
            and origin_of(uri) == origin_of(registration.endpoint)
        ):
            answer = send(
                findings.http, "DELETE", uri, headers={"Authorization": f"Bearer {token}"}
            ).response
            if answer is not None and answer.status_code in (200, 204):
                deleted.append(response["client_id"])
                continue
        left.append(response["client_id"])
    parts = []
    if deleted:
        parts.append(f"deleted the {len(deleted)} test registration(s) (RFC 7592)")
    if left:
        parts.append(
            f"left {len(left)} test registration(s) on the server ({', '.join(left)}): it offers "
            "no way to delete them; servers usually prune registrations that never got a token"
        )
    parts.append("nothing else was created (no sign-in, no code, no token)")
    return passed("; ".join(parts))
