"""Forwarded headers, believed only from the configured proxies (FORWARDED_ALLOW_IPS).

uvicorn's ProxyHeadersMiddleware does the work: from a trusted peer it reads X-Forwarded-Proto
and takes the right-most X-Forwarded-For hop that is not itself a trusted proxy (a proxy appends
the address it saw, so everything left of that is whatever the client wrote). From any other peer
the headers are ignored. It wraps the whole platform, so Django and the gateway see one address;
uvicorn runs with --no-proxy-headers so there is one place that decides.
"""

from django.conf import settings
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


def client_address(request) -> str | None:
    """The address of the client of a Django request, as the middleware below left it."""
    return request.META.get("REMOTE_ADDR") or None


class TrustedProxyHeaders:
    def __init__(self, app) -> None:
        self.app = app
        self._trusted: tuple[str, ...] | None = None
        self._middleware: ProxyHeadersMiddleware | None = None

    def _current(self) -> ProxyHeadersMiddleware:
        trusted = tuple(settings.FORWARDED_ALLOW_IPS)
        if trusted != self._trusted:  # read per request: tests change the setting
            self._middleware = ProxyHeadersMiddleware(self.app, trusted_hosts=list(trusted))
            self._trusted = trusted
        return self._middleware

    async def __call__(self, scope, receive, send) -> None:
        await self._current()(scope, receive, send)
