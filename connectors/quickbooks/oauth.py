"""Intuit OAuth 2.0 client: discovery, authorization URL, code exchange, refresh, revoke.

It holds no tokens: each call takes what it needs and returns a `TokenSet`; the platform stores
them. A refresh is never retried once it may have reached Intuit: with strict rotation, a lost
answer followed by a blind retry can trade a working refresh token for `invalid_grant`, so
the caller decides (only requests that never left this process are sent again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx

from .errors import (
    OAuthError,
    ProviderUnavailable,
    api_error_from_response,
    oauth_error_from_response,
)
from .transport import NOT_SENT_ERRORS, make_async_client, make_client, unavailable

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
OPENID_SCOPES = ("openid", "profile", "email")

PRODUCTION_DISCOVERY_URL = "https://developer.intuit.com/.well-known/openid_configuration"
SANDBOX_DISCOVERY_URL = "https://developer.intuit.com/.well-known/openid_sandbox_configuration"
PRODUCTION_API_BASE = "https://quickbooks.api.intuit.com/v3"
SANDBOX_API_BASE = "https://sandbox-quickbooks.api.intuit.com/v3"
DISCOVERY_MAX_AGE = 24 * 3600.0


@dataclass(frozen=True)
class IntuitEndpoints:
    """Where Intuit (or the emulator) answers; from the discovery document plus the API base."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    api_base: str  # e.g. https://quickbooks.api.intuit.com/v3

    @classmethod
    def from_discovery(cls, document: dict[str, Any], *, api_base: str) -> IntuitEndpoints:
        required = ("issuer", "authorization_endpoint", "token_endpoint", "revocation_endpoint")
        missing = [name for name in required if not document.get(name)]
        if missing:
            raise ProviderUnavailable(f"Intuit discovery document lacks {', '.join(missing)}")
        return cls(
            issuer=document["issuer"],
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            revocation_endpoint=document["revocation_endpoint"],
            userinfo_endpoint=document.get("userinfo_endpoint", ""),
            jwks_uri=document.get("jwks_uri", ""),
            api_base=api_base.rstrip("/"),
        )


def discovery_location(environment: str) -> tuple[str, str]:
    """(discovery URL, Accounting API base) for "production", "sandbox" or an emulator URL."""
    if environment == "production":
        return PRODUCTION_DISCOVERY_URL, PRODUCTION_API_BASE
    if environment == "sandbox":
        return SANDBOX_DISCOVERY_URL, SANDBOX_API_BASE
    if environment.startswith(("http://", "https://")):
        base = environment.rstrip("/")
        return f"{base}/.well-known/openid_configuration", f"{base}/v3"
    raise ValueError("environment must be 'production', 'sandbox' or an emulator base URL")


_endpoint_cache: dict[str, tuple[IntuitEndpoints, float]] = {}
_endpoint_cache_lock = threading.Lock()


def load_endpoints(
    environment: str,
    *,
    http: httpx.Client | None = None,
    max_age: float = DISCOVERY_MAX_AGE,
) -> IntuitEndpoints:
    """Intuit's endpoints from its discovery document, cached per environment for `max_age`."""
    with _endpoint_cache_lock:
        cached = _endpoint_cache.get(environment)
        if cached and time.monotonic() - cached[1] < max_age:
            return cached[0]
    discovery_url, api_base = discovery_location(environment)
    client = http or make_client()
    try:
        response = client.get(discovery_url)
    except httpx.HTTPError as error:
        raise unavailable(error, "Intuit discovery") from error
    finally:
        if http is None:
            client.close()
    if response.status_code != 200:
        raise ProviderUnavailable(
            f"Intuit discovery answered HTTP {response.status_code}",
            status_code=response.status_code,
            intuit_tid=response.headers.get("intuit_tid"),
        )
    try:
        document = response.json()
    except ValueError:
        raise ProviderUnavailable("Intuit discovery document is not JSON") from None
    endpoints = IntuitEndpoints.from_discovery(document, api_base=api_base)
    with _endpoint_cache_lock:
        _endpoint_cache[environment] = (endpoints, time.monotonic())
    return endpoints


def clear_endpoint_cache() -> None:
    """Forget cached discovery documents (tests, or after Intuit moved an endpoint)."""
    with _endpoint_cache_lock:
        _endpoint_cache.clear()


def authorization_url(
    endpoints: IntuitEndpoints,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    scopes: Iterable[str] = (ACCOUNTING_SCOPE,),
) -> str:
    """Where to send the browser; Intuit comes back with `code`, `state` and `realmId`."""
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "scope": " ".join(scopes),
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"{endpoints.authorization_endpoint}?{query}"


@dataclass(frozen=True)
class TokenSet:
    """One token endpoint answer. Token values are left out of repr (and so out of logs)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    refresh_expires_in: int | None
    obtained_at: datetime
    id_token: str | None = field(default=None, repr=False)
    token_type: str = "bearer"

    @property
    def expires_at(self) -> datetime:
        return self.obtained_at + timedelta(seconds=self.expires_in)

    @property
    def refresh_expires_at(self) -> datetime | None:
        if self.refresh_expires_in is None:
            return None
        return self.obtained_at + timedelta(seconds=self.refresh_expires_in)

    @classmethod
    def from_response(cls, payload: Any, obtained_at: datetime) -> TokenSet:
        if not isinstance(payload, dict) or not payload.get("access_token"):
            raise OAuthError("invalid_token_response", "the token response has no access_token")
        if not payload.get("refresh_token"):
            raise OAuthError("invalid_token_response", "the token response has no refresh_token")
        refresh_expires_in = payload.get("x_refresh_token_expires_in")
        return cls(
            access_token=payload["access_token"],
            refresh_token=payload["refresh_token"],
            expires_in=int(payload.get("expires_in", 3600)),
            refresh_expires_in=int(refresh_expires_in) if refresh_expires_in is not None else None,
            obtained_at=obtained_at,
            id_token=payload.get("id_token"),
            token_type=str(payload.get("token_type", "bearer")).lower(),
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class IntuitOAuthClient:
    """OAuth calls for one Intuit app (client id and secret), in sync and async flavours."""

    def __init__(
        self,
        endpoints: IntuitEndpoints,
        *,
        client_id: str,
        client_secret: str,
        http: httpx.Client | None = None,
        async_http: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | None = None,
        connect_retries: int = 2,
        retry_backoff: float = 0.2,
        clock: Callable[[], datetime] = _utc_now,
    ):
        self.endpoints = endpoints
        self.client_id = client_id
        self._client_secret = client_secret
        self._http = http
        self._async_http = async_http
        self._timeout = timeout
        self._connect_retries = connect_retries
        self._retry_backoff = retry_backoff
        self._clock = clock

    def __repr__(self) -> str:
        return f"IntuitOAuthClient(client_id={self.client_id!r}, issuer={self.endpoints.issuer!r})"

    def authorization_url(
        self, *, redirect_uri: str, state: str, scopes: Iterable[str] = (ACCOUNTING_SCOPE,)
    ) -> str:
        """See the module function `authorization_url`."""
        return authorization_url(
            self.endpoints,
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            state=state,
            scopes=scopes,
        )

    # Requests are described once and sent by either flavour.

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": self.endpoints.token_endpoint,
            "data": form,
            "auth": (self.client_id, self._client_secret),
        }

    def _revoke_request(self, token: str) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": self.endpoints.revocation_endpoint,
            "json": {"token": token},
            "auth": (self.client_id, self._client_secret),
        }

    def _token_set(self, response: httpx.Response) -> TokenSet:
        if (error := oauth_error_from_response(response)) is not None:
            raise error
        try:
            payload = response.json()
        except ValueError:
            raise OAuthError("invalid_token_response", "the token response is not JSON") from None
        return TokenSet.from_response(payload, self._clock())

    def _send(self, request: dict[str, Any], what: str) -> httpx.Response:
        client = self._http or make_client(timeout=self._timeout)
        try:
            for attempt in range(self._connect_retries + 1):
                try:
                    return client.request(**request)
                except NOT_SENT_ERRORS as error:
                    if attempt == self._connect_retries:
                        raise unavailable(error, what) from error
                    time.sleep(self._retry_backoff * (attempt + 1))
                except httpx.HTTPError as error:
                    raise unavailable(error, what) from error
            raise AssertionError("unreachable")
        finally:
            if self._http is None:
                client.close()

    async def _send_async(self, request: dict[str, Any], what: str) -> httpx.Response:
        client = self._async_http or make_async_client(timeout=self._timeout)
        try:
            for attempt in range(self._connect_retries + 1):
                try:
                    return await client.request(**request)
                except NOT_SENT_ERRORS as error:
                    if attempt == self._connect_retries:
                        raise unavailable(error, what) from error
                    await anyio.sleep(self._retry_backoff * (attempt + 1))
                except httpx.HTTPError as error:
                    raise unavailable(error, what) from error
            raise AssertionError("unreachable")
        finally:
            if self._async_http is None:
                await client.aclose()

    # sync

    def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        """Trade the callback's code for tokens (InvalidGrant if used, expired or mismatched)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return self._token_set(self._send(self._token_request(form), "Intuit token endpoint"))

    def refresh(self, refresh_token: str) -> TokenSet:
        """New access token; store the returned refresh token at once, it may be a new value."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_set(self._send(self._token_request(form), "Intuit token endpoint"))

    def revoke(self, token: str) -> None:
        """Disconnect: revoking the refresh (or access) token ends the whole grant."""
        response = self._send(self._revoke_request(token), "Intuit revoke endpoint")
        if (error := oauth_error_from_response(response)) is not None:
            raise error

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The signed-in Intuit user's claims (needs the openid scope)."""
        request = {
            "method": "GET",
            "url": self.endpoints.userinfo_endpoint,
            "headers": {"Authorization": f"Bearer {access_token}"},
        }
        response = self._send(request, "Intuit userinfo endpoint")
        # A bearer-token endpoint: 401 means the access token, not our client, was refused.
        if (error := api_error_from_response(response)) is not None:
            raise error
        return response.json()

    # async

    async def exchange_code_async(self, code: str, redirect_uri: str) -> TokenSet:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        request = self._token_request(form)
        return self._token_set(await self._send_async(request, "Intuit token endpoint"))

    async def refresh_async(self, refresh_token: str) -> TokenSet:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        request = self._token_request(form)
        return self._token_set(await self._send_async(request, "Intuit token endpoint"))

    async def revoke_async(self, token: str) -> None:
        response = await self._send_async(self._revoke_request(token), "Intuit revoke endpoint")
        if (error := oauth_error_from_response(response)) is not None:
            raise error
