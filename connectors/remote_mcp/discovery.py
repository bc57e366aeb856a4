"""Where an upstream MCP server's authorization server is, as each spec generation finds it.

Order (MCP 2025-11-25 client rules, then the 2025-03-26 fallback):
1. an unauthenticated POST to the MCP URL; a 401's ``resource_metadata`` (and ``scope``);
2. protected-resource metadata: that URL, else path-inserted, else at the origin root;
3. with metadata: the listed issuer's RFC 8414 / OIDC documents (path-inserted forms first for
   issuers with a path); without: the MCP origin's root ``oauth-authorization-server`` (then
   ``openid-configuration``), and failing both, ``/authorize``, ``/token``, ``/register`` at
   the origin root (2025-03-26 default endpoints).
Every URL tried is kept in ``steps`` for the connect trace and "Test upstream".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from connectors.base import refused_by_guard

CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
PROBE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "mcp-connector-platform", "version": "1"},
    },
}


class DiscoveryFailed(Exception):
    """The upstream's authorization server could not be found; ``str()`` says why."""


@dataclass(frozen=True)
class AuthServer:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None = None
    revocation_endpoint: str | None = None
    cimd_supported: bool = False
    resource: str = ""
    scope: str = ""
    steps: tuple[str, ...] = field(default=(), compare=False)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _path(url: str) -> str:
    return urlsplit(url).path.rstrip("/")


def failure(exc: httpx.HTTPError) -> str:
    """What went wrong with a request, for steps and messages (never a credential)."""
    refused = refused_by_guard(exc)
    return f"refused by the platform: {refused}" if refused else type(exc).__name__


def _json(http: httpx.Client, url: str, steps: list[str]) -> dict | None:
    try:
        response = http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        steps.append(f"GET {url}: {failure(exc)}")
        return None
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    steps.append(f"GET {url}: {response.status_code} {kind}".rstrip())
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _challenge(http: httpx.Client, mcp_url: str, steps: list[str]) -> dict[str, str]:
    try:
        response = http.post(
            mcp_url,
            json=PROBE,
            headers={"Accept": "application/json, text/event-stream"},
        )
    except httpx.HTTPError as exc:
        raise DiscoveryFailed(f"{mcp_url} could not be reached ({failure(exc)})") from None
    steps.append(f"POST {mcp_url} without a token: {response.status_code}")
    if response.status_code != 401:
        return {}
    header = response.headers.get("www-authenticate", "")
    return {k.lower(): v for k, v in CHALLENGE_PARAM.findall(header)}


def _resource_metadata(http, mcp_url: str, hinted: str | None, steps) -> dict | None:
    base = origin(mcp_url)
    candidates = [hinted] if hinted else []
    if _path(mcp_url):
        candidates.append(f"{base}/.well-known/oauth-protected-resource{_path(mcp_url)}")
    candidates.append(f"{base}/.well-known/oauth-protected-resource")
    for url in candidates:
        document = _json(http, url, steps)
        if document and document.get("authorization_servers"):
            return document
    return None


def _metadata_urls(issuer: str) -> list[str]:
    base, path = origin(issuer), _path(issuer)
    if path:
        return [
            f"{base}/.well-known/oauth-authorization-server{path}",
            f"{base}/.well-known/openid-configuration{path}",
            f"{base}{path}/.well-known/openid-configuration",
        ]
    return [
        f"{base}/.well-known/oauth-authorization-server",
        f"{base}/.well-known/openid-configuration",
    ]


def discover(mcp_url: str, *, http: httpx.Client) -> AuthServer:
    """The authorization server of the MCP server at ``mcp_url``."""
    steps: list[str] = []
    challenge = _challenge(http, mcp_url, steps)
    prm = _resource_metadata(http, mcp_url, challenge.get("resource_metadata"), steps)
    if prm is not None:
        issuer = str(prm["authorization_servers"][0]).rstrip("/")
        resource = str(prm.get("resource") or mcp_url)
        scope = challenge.get("scope") or " ".join(prm.get("scopes_supported") or [])
    else:
        issuer, resource, scope = origin(mcp_url), mcp_url, challenge.get("scope", "")
    metadata = None
    for url in _metadata_urls(issuer):
        document = _json(http, url, steps)
        if document and document.get("authorization_endpoint") and document.get("token_endpoint"):
            metadata = document
            break
    if metadata is None:
        if prm is not None:
            raise DiscoveryFailed(
                f"{issuer} (named by the protected-resource metadata) has no authorization "
                f"server metadata (RFC 8414 or OpenID discovery; last: {steps[-1]})"
            )
        steps.append(f"no metadata: 2025-03-26 default endpoints at {issuer}")
        metadata = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "registration_endpoint": f"{issuer}/register",
        }
    methods = metadata.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise DiscoveryFailed(f"{issuer} does not support PKCE S256 (it lists {methods})")
    return AuthServer(
        issuer=str(metadata.get("issuer") or issuer),
        authorization_endpoint=metadata["authorization_endpoint"],
        token_endpoint=metadata["token_endpoint"],
        registration_endpoint=metadata.get("registration_endpoint"),
        revocation_endpoint=metadata.get("revocation_endpoint"),
        cimd_supported=metadata.get("client_id_metadata_document_supported") is True,
        resource=resource,
        scope=scope,
        steps=tuple(steps),
    )
