"""The doctor's HTTP: one client with timeouts, redirects never followed implicitly, no cookies,
no credentials; plus the URL and header rules the clients apply."""

import html
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from connectors.base import NoCookies, guard_transport

# Claude's backend calls with python-httpx: a CDN rule that blocks it blocks the doctor as well.
USER_AGENT = f"python-httpx/{httpx.__version__} (mcp-connection-doctor)"
# The MCP Inspector's origin: what a browser-based client sends in CORS requests.
BROWSER_ORIGIN = "http://localhost:6274"
PRM_WELL_KNOWN = "/.well-known/oauth-protected-resource"
AS_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
MAX_DISCOVERY_REDIRECTS = 3


def user_agent(run: str = "") -> str:
    """The doctor's User-Agent; with ``run``, it names the run, so the platform's trace can
    gather that run's requests into one entry (events.trace)."""
    return USER_AGENT if not run else f"{USER_AGENT[:-1]}; run {run})"


def doctor_http_client(
    *, timeout: float = 10.0, guarded: bool = False, run: str = ""
) -> httpx.Client:
    """The one client every doctor request goes through.

    Redirects are not followed (a redirect is itself a finding), cookies are refused (the doctor
    keeps no session anywhere), and connection failures are retried once (safe for any method:
    nothing reached the server). ``guarded`` (a URL a tenant chose): it connects only to public
    addresses or OUTBOUND_ALLOWED_NETWORKS (connectors.base.guard_transport).
    """
    transport = httpx.HTTPTransport(retries=1)
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        follow_redirects=False,
        headers={"User-Agent": user_agent(run)},
        cookies=NoCookies(),
        transport=guard_transport(transport) if guarded else transport,
        trust_env=not guarded,
    )


@dataclass(frozen=True)
class Exchange:
    """One request's outcome: a response, or why none came."""

    response: httpx.Response | None
    error: str = ""


def send(http: httpx.Client, method: str, url: str, **kwargs) -> Exchange:
    try:
        return Exchange(http.request(method, url, **kwargs))
    except httpx.HTTPError as exc:
        return Exchange(None, transport_error_text(exc))


def send_bounded(
    http: httpx.Client, method: str, url: str, *, max_bytes: int = 64 * 1024, **kwargs
) -> Exchange:
    """Like ``send``, but reads at most ``max_bytes`` of the body and stops after the first SSE
    event: a server that answers without auth may hold an event stream open."""
    try:
        with http.stream(method, url, **kwargs) as streamed:
            body = bytearray()
            event_stream = "text/event-stream" in streamed.headers.get("content-type", "")
            for chunk in streamed.iter_bytes():
                body.extend(chunk)
                if len(body) >= max_bytes or (event_stream and b"\n\n" in body):
                    break
            headers = [(k, v) for k, v in streamed.headers.items() if k != "content-encoding"]
            response = httpx.Response(
                streamed.status_code, headers=headers, content=bytes(body), request=streamed.request
            )
            return Exchange(response)
    except httpx.HTTPError as exc:
        return Exchange(None, transport_error_text(exc))


def transport_error_text(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer before the timeout"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, httpx.ConnectError) else f"{type(exc).__name__}: {text}"


def location_of(response: httpx.Response) -> str:
    """The absolute redirect target, or '' when the response is not a redirect."""
    if not response.is_redirect:
        return ""
    return urljoin(str(response.request.url), response.headers.get("location", ""))


def is_html(response: httpx.Response) -> bool:
    if "html" in response.headers.get("content-type", "").lower():
        return True
    return response.content[:200].lstrip().startswith(b"<")


def body_excerpt(response: httpx.Response, limit: int = 200) -> str:
    """The response body as one readable line (tags stripped), for error details."""
    text = response.text
    if is_html(response):
        text = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", text)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def oauth_error_text(response: httpx.Response) -> str:
    """``error: description`` from an OAuth error body, else an excerpt of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        description = body.get("error_description") or ""
        return f"{body['error']}: {description}" if description else str(body["error"])
    return body_excerpt(response) or "(empty body)"


# --- discovery documents -------------------------------------------------------------------------


@dataclass
class Document:
    """A discovery document as a client fetches it (GET, redirects followed by hand).

    ``kind`` is what the client makes of it: ``json`` (an object), ``html`` (a web page where
    JSON was expected), ``missing`` (4xx: a client tries its next URL), ``denied`` (401/403:
    behind authentication), ``invalid`` (200 but not a JSON object) or ``error`` (5xx, no
    answer, too many redirects).
    """

    url: str
    kind: str
    status: int | None = None
    data: dict | None = None
    redirects: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "json"

    def summary(self) -> str:
        via = f" (redirected to {self.redirects[-1]})" if self.redirects else ""
        if self.ok:
            return f"JSON{via}"
        return f"{self.problem}{via}"


def fetch_document(http: httpx.Client, url: str) -> Document:
    redirects: list[str] = []
    current = url
    for _ in range(MAX_DISCOVERY_REDIRECTS + 1):
        exchange = send(http, "GET", current, headers={"Accept": "application/json"})
        response = exchange.response
        if response is None:
            return Document(url, "error", problem=f"no answer: {exchange.error}")
        if not response.is_redirect:
            return _classify(url, response, redirects)
        current = location_of(response)
        redirects.append(current)
    return Document(url, "error", redirects=redirects, problem="too many redirects")


def _classify(url: str, response: httpx.Response, redirects: list[str]) -> Document:
    status = response.status_code
    document = Document(url, "error", status=status, redirects=redirects)
    if status in (401, 403):
        document.kind, document.problem = "denied", f"HTTP {status}: behind authentication"
    elif status == 429 or status >= 500:
        document.problem = f"HTTP {status}: {body_excerpt(response, 120)}"
    elif 400 <= status < 500:
        document.kind, document.problem = "missing", f"HTTP {status}"
    elif is_html(response):
        document.kind = "html"
        document.problem = f"an HTML page with status {status} where JSON was expected"
    else:
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            document.kind, document.data = "json", data
        else:
            document.kind = "invalid"
            document.problem = f"HTTP {status} but not a JSON object"
    return document


# --- WWW-Authenticate ----------------------------------------------------------------------------

_AUTH_PARAM = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')
_BEARER = re.compile(r"(?:^|,)\s*bearer(?=\s|,|$)", re.IGNORECASE)


def bearer_challenge(header: str) -> dict[str, str] | None:
    """The parameters of the Bearer challenge in a WWW-Authenticate value, or None without one."""
    match = _BEARER.search(header)
    if match is None:
        return None
    params: dict[str, str] = {}
    for param in _AUTH_PARAM.finditer(header, match.end()):
        name = param[1].lower()
        if name in params:  # the next challenge's parameters
            break
        value = param[2] if param[2] is not None else param[3]
        params[name] = re.sub(r"\\(.)", r"\1", value)
    return params


# --- URLs ----------------------------------------------------------------------------------------

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """scheme://host[:port] with the default port dropped, as browsers compare origins."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def path_inserted(url: str, well_known: str) -> str:
    """RFC 8414 / RFC 9728: the well-known suffix between the host and the path."""
    parts = urlsplit(url)
    path = "" if parts.path in ("", "/") else parts.path
    query = f"?{parts.query}" if parts.query else ""
    return f"{origin_of(url)}{well_known}{path}{query}"


def authorization_server_metadata_urls(issuer: str) -> list[str]:
    """Where a 2025-11-25 client looks for an issuer's metadata, in its order."""
    path = urlsplit(issuer).path.rstrip("/")
    origin = origin_of(issuer)
    if not path:
        return [f"{origin}{AS_WELL_KNOWN}", f"{origin}{OIDC_WELL_KNOWN}"]
    return [
        f"{origin}{AS_WELL_KNOWN}{path}",
        f"{origin}{OIDC_WELL_KNOWN}{path}",
        f"{origin}{path}{OIDC_WELL_KNOWN}",
    ]


def is_loopback(host: str | None) -> bool:
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def looks_internal(host: str | None) -> bool:
    """A host name only the server's own network knows: loopback, private, a bare container
    name (``web``), ``*.local`` / ``*.internal``."""
    host = (host or "").strip("[]").lower()
    if is_loopback(host):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.endswith((".local", ".internal", ".lan", ".svc"))
    return address.is_private or address.is_link_local


def is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
