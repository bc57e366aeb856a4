"""A hand-driven OAuth client (register, authorize, exchange, refresh) for precise assertions."""

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from tests.support.oauth import Browser

REDIRECT = "https://claude.ai/api/mcp/auth_callback"
# httpx's 5 s default fails tests on a busy 2-core machine, not on a slow server.
TIMEOUT = 30


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class OAuthClient:
    base: str
    client_id: str
    client_secret: str | None = None
    redirect_uri: str = REDIRECT

    @classmethod
    def register(cls, base: str, redirect_uri: str = REDIRECT, method: str = "none"):
        response = httpx.post(
            f"{base}/register",
            timeout=TIMEOUT,
            json={
                "client_name": "Test client",
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": method,
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return cls(base, body["client_id"], body.get("client_secret"), redirect_uri)

    def authorize_url(
        self,
        challenge: str | None,
        *,
        resource: str | None = None,
        method: str | None = "S256",
        redirect_uri: str | None = None,
        state: str = "st4te",
        scope: str = "mcp",
    ) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri or self.redirect_uri,
            "state": state,
            "scope": scope,
        }
        if challenge is not None:
            params["code_challenge"] = challenge
        if method is not None and challenge is not None:
            params["code_challenge_method"] = method
        if resource:
            params["resource"] = resource
        return f"{self.base}/authorize?{urlencode(params)}"

    def code_for(
        self, browser: Browser, resource: str | None, scope: str = "mcp"
    ) -> tuple[str, str]:
        """Authorize through ``browser``; returns (code, verifier)."""
        verifier, challenge = pkce_pair()
        query = browser.authorize(self.authorize_url(challenge, resource=resource, scope=scope))
        assert "code" in query, query
        return query["code"], verifier

    def _auth(self, data: dict) -> dict:
        data = dict(data, client_id=self.client_id)
        if self.client_secret:
            data["client_secret"] = self.client_secret
        return data

    def exchange(self, code: str, verifier: str, resource: str | None = None) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": self.redirect_uri,
        }
        if resource:
            data["resource"] = resource
        return httpx.post(f"{self.base}/token", data=self._auth(data), timeout=TIMEOUT)

    def refresh(self, refresh_token: str) -> httpx.Response:
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return httpx.post(f"{self.base}/token", data=self._auth(data), timeout=TIMEOUT)

    def tokens(self, browser: Browser, resource: str | None, scope: str = "mcp") -> dict:
        code, verifier = self.code_for(browser, resource, scope)
        response = self.exchange(code, verifier, resource)
        assert response.status_code == 200, response.text
        return response.json()


def mcp_post(url: str, token: str | None, payload=None, headers=None, **kwargs) -> httpx.Response:
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
        **(headers or {}),
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = (
        payload if payload is not None else {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    )
    kwargs.setdefault("timeout", TIMEOUT)
    if isinstance(payload, (bytes, str)):
        return httpx.post(
            url, content=payload, headers={**headers, "Content-Type": "application/json"}, **kwargs
        )
    return httpx.post(url, json=payload, headers=headers, **kwargs)


def stored_access_token(raw: str):
    """The AccessToken row of a raw token: stored as its SHA-256 only, so found by that."""
    from oauth2_provider.models import AccessToken

    return AccessToken.objects.get(token_checksum=hashlib.sha256(raw.encode()).hexdigest())
