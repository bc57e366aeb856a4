"""The one place QuickBooks HTTP clients are made: timeouts, headers, and when a retry is safe."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass

import httpx

from connectors.base import NoCookies

from .errors import ProviderUnavailable

# Intuit cuts requests off at 120 s; a read that takes 30 s is already a failure for a tool call.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
USER_AGENT = "mcp-connector-platform-quickbooks/0.1"

# The request never reached Intuit: safe to send again whatever it was.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon to try again; `backoff` seconds grows with each attempt."""

    max_attempts: int = 3
    backoff: float = 0.5
    retry_statuses: frozenset[int] = frozenset({500, 502, 503, 504})

    def delay(self, attempt: int) -> float:
        return self.backoff * attempt


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every client: building one loads the CA bundle (~60 ms)."""
    return httpx.create_ssl_context()


def make_client(
    *,
    timeout: httpx.Timeout | None = None,
    transport: httpx.BaseTransport | None = None,
    limits: httpx.Limits | None = None,
) -> httpx.Client:
    """A synchronous client with our timeouts (for OAuth calls made from sync code)."""
    return httpx.Client(
        timeout=timeout or DEFAULT_TIMEOUT,
        limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
        verify=shared_ssl_context(),
        transport=transport,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
        cookies=NoCookies(),
    )


def make_async_client(
    *, timeout: httpx.Timeout | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An asynchronous client with our timeouts (for the Accounting API)."""
    return httpx.AsyncClient(
        timeout=timeout or DEFAULT_TIMEOUT,
        verify=shared_ssl_context(),
        transport=transport,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
        cookies=NoCookies(),
    )


def unavailable(error: httpx.HTTPError, what: str) -> ProviderUnavailable:
    """A network failure as ProviderUnavailable; the message names the failure, never secrets."""
    kind = type(error).__name__
    if isinstance(error, httpx.TimeoutException):
        return ProviderUnavailable(f"{what}: timed out ({kind})")
    return ProviderUnavailable(f"{what}: network error ({kind})")
