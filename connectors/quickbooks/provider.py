"""The QuickBooks side of the platform's upstream-provider interface (connectors.base)."""

import os
import threading
from collections.abc import Mapping
from dataclasses import replace

import httpx

from connectors.base import UpstreamReauthRequired, UpstreamTokens, UpstreamUnavailable
from connectors.quickbooks import client as qbo
from connectors.quickbooks import env
from connectors.quickbooks.kind import PROVIDER

# Enough for a thread pool of a few dozen workers; waiting longer than the pool timeout (5 s)
# for a free connection is reported as unavailable, like any connect failure. Connections idle
# for 4 s are dropped before a server's usual 5 s keep-alive timeout can race with a reuse.
SHARED_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=4.0)
_http_lock = threading.Lock()
_http: tuple[int, httpx.Client] | None = None  # (pid that made it, client)


def shared_http() -> httpx.Client:
    """The process's one client for Intuit's OAuth endpoints, shared by all threads.

    Its pool keeps connections alive between refreshes, so a busy worker does not pay a TCP
    connect, a DNS lookup and a TLS handshake with Intuit on every refresh (one new client per
    call did). httpx.Client is thread-safe. It is made lazily and made again in a forked child
    (a prefork worker must not share its parent's sockets); the timeouts are the same as
    before (transport.DEFAULT_TIMEOUT), and the pool is bounded so a stuck Intuit cannot make
    a worker open connections without end.
    """
    global _http
    pid = os.getpid()
    current = _http
    if current is not None and current[0] == pid:
        return current[1]
    with _http_lock:
        if _http is None or _http[0] != pid:
            _http = (pid, qbo.make_client(limits=SHARED_LIMITS))
        return _http[1]


def close_shared_http() -> None:
    """Close the shared client's connections (tests, shutdown); the next call makes a new one."""
    global _http
    with _http_lock:
        current, _http = _http, None
    if current is not None and current[0] == os.getpid():
        current[1].close()


def environment() -> str:
    """ "production", "sandbox" or the emulator's base URL (QUICKBOOKS_ENVIRONMENT)."""
    return env.ENVIRONMENT.value()


def api_base() -> str:
    """The Accounting API's base URL; known without asking Intuit (no HTTP, safe in async)."""
    return qbo.discovery_location(environment())[1]


def endpoints() -> qbo.IntuitEndpoints:
    try:
        return qbo.load_endpoints(environment(), http=shared_http())
    except qbo.QuickBooksError as exc:
        raise UpstreamUnavailable(f"Intuit discovery failed: {exc}") from None


def _tokens(token_set: qbo.TokenSet, realm_id: str = "") -> UpstreamTokens:
    return UpstreamTokens(
        access_token=token_set.access_token,
        refresh_token=token_set.refresh_token,
        expires_in=token_set.expires_in,
        refresh_expires_in=token_set.refresh_expires_in,
        external_account_id=realm_id,
    )


def _translate(exc: qbo.QuickBooksError) -> Exception:
    """Intuit's errors as the platform's two kinds: dead grant, or try again later."""
    if isinstance(exc, qbo.InvalidGrant):
        return UpstreamReauthRequired(f"Intuit refused the grant (invalid_grant): {exc}")
    if isinstance(exc, qbo.Throttled):
        return UpstreamUnavailable(
            f"Intuit throttled the request: {exc}", retry_after=exc.retry_after
        )
    if isinstance(exc, qbo.InvalidClient):
        # Our app credentials are wrong: not the user's fault, and not fixed by reconnecting.
        return UpstreamUnavailable(f"Intuit refused this server's app credentials: {exc}")
    return UpstreamUnavailable(f"Intuit is unavailable: {exc}")


def _company_name(token_set: qbo.TokenSet, realm_id: str) -> str:
    """The company's name for the dashboard and status tool; best effort (empty on failure),
    since the connection works without it."""
    api = endpoints().api_base
    try:
        response = shared_http().get(
            f"{api}/company/{realm_id}/companyinfo/{realm_id}",
            params={"minorversion": qbo.MINOR_VERSION},
            headers={
                "Authorization": f"Bearer {token_set.access_token}",
                "Accept": "application/json",
            },
        )
        return str(response.json()["CompanyInfo"]["CompanyName"])[:200]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return ""


class QuickBooksProvider:
    name = PROVIDER

    def __init__(self, *, client_id: str, client_secret: str):
        self.client_id = client_id
        self.client_secret = client_secret

    def _oauth(self) -> qbo.IntuitOAuthClient:
        return qbo.IntuitOAuthClient(
            endpoints(),
            client_id=self.client_id,
            client_secret=self.client_secret,
            http=shared_http(),
        )

    def authorization_url(self, *, state: str, redirect_uri: str) -> str:
        return qbo.authorization_url(
            endpoints(), client_id=self.client_id, redirect_uri=redirect_uri, state=state
        )

    def exchange_code(self, *, params: Mapping[str, str], redirect_uri: str) -> UpstreamTokens:
        realm_id = params.get("realmId", "")
        if not params.get("code") or not realm_id:
            raise UpstreamReauthRequired("Intuit's answer has no code or no realmId")
        try:
            token_set = self._oauth().exchange_code(params["code"], redirect_uri)
        except qbo.QuickBooksError as exc:
            raise _translate(exc) from None
        tokens = _tokens(token_set, realm_id)
        return replace(tokens, external_account_name=_company_name(token_set, realm_id))

    def refresh(self, refresh_token: str) -> UpstreamTokens:
        try:
            return _tokens(self._oauth().refresh(refresh_token))
        except qbo.QuickBooksError as exc:
            raise _translate(exc) from None

    def revoke(self, token: str) -> None:
        try:
            self._oauth().revoke(token)
        except qbo.QuickBooksError as exc:
            raise _translate(exc) from None


def build_provider() -> QuickBooksProvider:
    return QuickBooksProvider(
        client_id=env.CLIENT_ID.value(), client_secret=env.CLIENT_SECRET.value()
    )
