"""The first request every client makes: a token-less initialize. Is the server reachable, on
https/443/IPv4, and does it answer 401 with a Bearer challenge naming its resource metadata?"""

import ipaddress
import socket
import time
from urllib.parse import urlsplit

from doctor.findings import Findings
from doctor.steps import Verdict, failed, passed, warned
from doctor.wire import (
    PRM_WELL_KNOWN,
    bearer_challenge,
    body_excerpt,
    is_html,
    is_http_url,
    is_loopback,
    location_of,
    path_inserted,
    send_bounded,
)

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "mcp-connection-doctor", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}

# --- reaching the server -------------------------------------------------------------------------


def check_reachable(findings: Findings) -> Verdict:
    """POST a token-less JSON-RPC initialize, as every client's first request."""
    started = time.monotonic()
    exchange = send_bounded(
        findings.http, "POST", findings.url, json=INITIALIZE, headers=MCP_HEADERS
    )
    findings.unauthenticated = exchange.response
    if exchange.response is None:
        return failed(
            f"no answer from {findings.origin}: {exchange.error}",
            _unreachable_fix(exchange.error, findings),
        )
    took = int((time.monotonic() - started) * 1000)
    tls = " over TLS (certificate verified)" if findings.url.startswith("https://") else ""
    return passed(f"HTTP {exchange.response.status_code} from {findings.origin}{tls} in {took} ms")


def _unreachable_fix(error: str, findings: Findings) -> str:
    lowered = error.lower()
    parts = urlsplit(findings.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return (
            f"The TLS certificate is not valid for {findings.host} or its chain is incomplete: "
            "serve a certificate from a public CA with the full chain (clients never skip "
            "verification)."
        )
    if "name or service" in lowered or "nodename" in lowered or "getaddrinfo" in lowered:
        return f"{findings.host} does not resolve: check the DNS name and its A record."
    if "refused" in lowered:
        return (
            f"Nothing listens on port {port}: check the port, the reverse proxy, and that the "
            "server binds to an address clients can reach (not only 127.0.0.1)."
        )
    return (
        f"Check that the server runs and that a firewall or security group lets port {port} "
        "through from the internet (Claude connects from Anthropic's servers)."
    )


def check_transport(findings: Findings) -> Verdict:
    """https on 443 over IPv4, as Claude's hosted connectors require; loopback is local-only."""
    parts = urlsplit(findings.url)
    host = parts.hostname or ""
    if is_loopback(host):
        return passed(
            f"loopback URL over {parts.scheme}: fine for clients on this machine (Claude Code, "
            "Cursor, VS Code, MCP Inspector); Claude's hosted connectors cannot reach it"
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    problems = []
    if parts.scheme != "https":
        problems.append("plain http: clients refuse or warn, and tokens travel in clear text")
    elif port != 443:
        problems.append(f"https on port {port}: Claude connects only to port 443")
    problems.extend(_address_problems(host, port))
    if problems:
        return warned(
            "; ".join(problems),
            "Serve the MCP URL as https://HOST/... on port 443 with a public IPv4 address "
            "(a TLS-terminating proxy in front is fine), and give clients that URL.",
        )
    return passed("https on port 443")


def _address_problems(host: str, port: int) -> list[str]:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return _ipv4_problems(host, port)
    if address.is_private or address.is_link_local:
        return [f"{host} is a private address: hosted clients (Claude, ChatGPT) cannot reach it"]
    if address.version == 6:
        return [f"{host} is an IPv6 address: Claude connects over IPv4"]
    return []


def _ipv4_problems(host: str, port: int) -> list[str]:
    try:
        families = {info[0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError:
        return []  # does not resolve at all: the reachable step says so
    if socket.AF_INET not in families:
        return [f"{host} has no IPv4 address (A record): Claude connects over IPv4"]
    return []


# --- the 401 -------------------------------------------------------------------------------------


def check_unauthenticated_post(findings: Findings) -> Verdict:
    """The token-less POST must get 401 + ``WWW-Authenticate: Bearer resource_metadata=...``."""
    response = findings.unauthenticated
    status = response.status_code
    answer_401 = (
        "Answer a request without a token with 401 and "
        'WWW-Authenticate: Bearer resource_metadata="<RFC 9728 metadata URL>"'
    )
    if response.is_redirect:
        location = location_of(response)
        if location.rstrip("/") == findings.url.rstrip("/") and location != findings.url:
            cause = (
                "A trailing-slash rule (Django's APPEND_SLASH, a framework's strict_slashes) "
                "redirects the POST, and clients do not follow it with their body: route this "
                "exact path (Django: @no_append_slash on the view), or give clients "
                f"{location} if that is the canonical URL."
            )
        elif location.startswith("https://") and findings.url.startswith("http://"):
            cause = f"The server upgrades to https: give clients the https URL ({location})."
        else:
            cause = (
                "Never redirect a POST to the MCP endpoint: serve it at the URL clients use, or "
                "give clients the final URL."
            )
        return failed(f"HTTP {status} redirect to {location}", cause)
    if status == 401:
        return _challenge_verdict(findings, response, answer_401)
    if status == 403:
        text = body_excerpt(response, 160)
        if "csrf" in text.lower():
            cause = "CSRF middleware rejects the POST: exempt the MCP endpoint from CSRF checks."
        elif "cf-ray" in response.headers or "cloudflare" in response.headers.get("server", ""):
            cause = (
                "A CDN/WAF rule blocks the request: allow the python-httpx and Claude-User user "
                "agents to reach the MCP endpoint and the OAuth endpoints."
            )
        else:
            cause = "403 is for a valid token that lacks a scope, not for a missing token."
        return failed(f"HTTP 403 instead of 401: {text}", f"{cause} {answer_401}.")
    if 200 <= status < 300:
        if is_html(response):
            return failed(
                f"HTTP {status} with an HTML page: this URL is a web page, not an MCP endpoint",
                "Give clients the URL of the MCP endpoint itself (often ending in /mcp).",
            )
        return failed(
            f"HTTP {status}: the server answers without asking for a token, so clients never "
            "start OAuth (fine only for a server meant to be public)",
            f"{answer_401}.",
        )
    hints = {
        404: "No MCP endpoint at this path: check the URL (often ending in /mcp).",
        405: "The URL does not take POST: it may be an SSE-only (2024-11-05) endpoint or not "
        "the MCP endpoint; Streamable HTTP clients POST to the MCP URL.",
        406: "The server refused Accept: application/json, text/event-stream, which every "
        "Streamable HTTP client sends.",
    }
    return failed(
        f"HTTP {status}: {body_excerpt(response, 160)}",
        hints.get(status, f"{answer_401}; errors of the server itself show in its logs."),
    )


def _challenge_verdict(findings: Findings, response, answer_401: str) -> Verdict:
    header = response.headers.get("www-authenticate", "")
    if not header:
        return failed("401 without a WWW-Authenticate header", f"{answer_401}.")
    challenge = bearer_challenge(header)
    if challenge is None:
        return failed(f"401 without a Bearer challenge: {header}", f"{answer_401}.")
    findings.challenge = challenge
    metadata_url = challenge.get("resource_metadata", "")
    if not metadata_url:
        return failed(
            f"401 with WWW-Authenticate: {header} (no resource_metadata): Claude and Claude Code "
            "stop before registering",
            f'{answer_401}, e.g. resource_metadata="'
            f'{path_inserted(findings.url, PRM_WELL_KNOWN)}" (MCP 2025-06-18, RFC 9728 §5.1).',
        )
    if not is_http_url(metadata_url):
        return failed(
            f"resource_metadata is not an absolute URL: {metadata_url!r}",
            "Give the full https URL of the resource metadata in the challenge.",
        )
    findings.resource_metadata_url = metadata_url
    scope = f', scope="{challenge["scope"]}"' if "scope" in challenge else ""
    return passed(f'401 with Bearer resource_metadata="{metadata_url}"{scope}')
