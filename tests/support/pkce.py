"""A hand-written OAuth client's pieces: PKCE S256, registration, /authorize URLs, code exchange.

The SDK does all of this for its own tests; these helpers let a test speak raw HTTP the way
other clients (VS Code, Cursor, a 2025-03-26 client) do, and check every step on the wire.
"""

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Pkce:
    """RFC 7636 verifier and its S256 challenge."""

    verifier: str = field(default_factory=lambda: _b64url(secrets.token_bytes(32)))

    @property
    def challenge(self) -> str:
        return _b64url(hashlib.sha256(self.verifier.encode()).digest())


def register(base_url: str, metadata: dict) -> httpx.Response:
    """POST ``metadata`` to the registration endpoint (RFC 7591), as JSON."""
    return httpx.post(f"{base_url}/register", json=metadata, timeout=10)


def registered_client(base_url: str, metadata: dict) -> dict:
    """Register and return the response body; fail the test unless the server said 201."""
    response = register(base_url, metadata)
    assert response.status_code == 201, response.text
    return response.json()


def authorize_url(
    base_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    pkce: Pkce,
    state: str = "state-123",
    resource: str | None = None,
    scope: str | None = "mcp",
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": state,
    }
    if scope is not None:
        params["scope"] = scope
    if resource is not None:
        params["resource"] = resource
    return f"{base_url}/authorize?{urlencode(params)}"


def exchange_code(
    base_url: str,
    *,
    client: dict,
    code: str,
    redirect_uri: str,
    pkce: Pkce,
    resource: str | None = None,
) -> httpx.Response:
    """Trade ``code`` at /token with the auth method the registration response announced."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": pkce.verifier,
    }
    if resource is not None:
        form["resource"] = resource
    method = client.get("token_endpoint_auth_method", "client_secret_basic")
    auth = None
    if method == "client_secret_basic":
        auth = (client["client_id"], client["client_secret"])
    else:
        form["client_id"] = client["client_id"]
        if method == "client_secret_post":
            form["client_secret"] = client["client_secret"]
    return httpx.post(f"{base_url}/token", data=form, auth=auth, timeout=10)
