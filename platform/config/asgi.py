"""The one ASGI app: Django for everything, the MCP gateway for ``/t/...``, and the lifespan."""

import ctypes
import gc
import os
import sys

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import checks
from django.core.asgi import get_asgi_application

from config.deferred_imports import imports_defer


def malloc_arenas_limit(arenas: int = 2) -> bool:
    """Limit glibc's malloc to ``arenas`` arenas, as MALLOC_ARENA_MAX does; True if it did.

    glibc gives each thread that allocates an arena of its own (up to 8 per core), and what is
    freed in one is not reused by another: the worker threads' arenas held 2.4 MB more after
    100,000 calls (bench/web_memory.py); under the GIL two suffice. The image sets
    MALLOC_ARENA_MAX=2 (Dockerfile), which glibc reads at start; ``manage.py serve`` and a plain
    ``uvicorn`` have no such variable, so the web process sets the same limit itself, before its
    first thread starts. A MALLOC_ARENA_MAX of the environment wins; elsewhere than glibc
    (musl, macOS) there is nothing to set."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    M_ARENA_MAX = -8  # glibc's malloc.h
    return bool(mallopt(M_ARENA_MAX, arenas))


malloc_arenas_limit()
# requests and urllib3 (django-oauth-toolkit's) and PyYAML (DRF's) at their first use, not at
# start (config.deferred_imports).
imports_defer("requests", "urllib3", "yaml")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # DRF imports django.contrib.postgres's model fields, and with them psycopg (about 10 MB of
    # resident memory), only to map PostgreSQL's own field types, which no table on SQLite has.
    # Unimportable, they are what DRF takes for psycopg not being installed (rest_framework.compat).
    sys.modules.setdefault("django.contrib.postgres.fields", None)
django_application = get_asgi_application()

# Celery is not imported here: the one task this process may send (a reconnect notice after an
# inline refresh found the grant dead) loads the platform's Celery app when it is first sent
# (upstream.tasks), about 5 MB that most web processes never need (bench/web_memory.py).
from config.metrics import metrics_asgi  # noqa: E402
from config.proxy import TrustedProxyHeaders  # noqa: E402
from gateway.asgi import Gateway  # noqa: E402


def serious_check_messages() -> str:
    """The errors of Django's system checks (as ``manage.py check`` runs them), one a line."""
    errors = [m for m in checks.run_checks() if m.is_serious() and not m.is_silenced()]
    return "\n".join(
        f"{m.id}: {m.msg} HINT: {m.hint}" if m.hint else f"{m.id}: {m.msg}" for m in errors
    )


class PlatformApplication:
    def __init__(self) -> None:
        self.django = django_application
        self.gateway = Gateway()
        self._handle = TrustedProxyHeaders(self._route)

    async def __call__(self, scope, receive, send) -> None:
        await self._handle(scope, receive, send)

    async def _route(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and self.gateway.matches(scope["path"]):
            await self.gateway(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == "/metrics":
            await metrics_asgi(scope, receive, send)
        else:
            await self.django(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        # Django's handler refuses lifespan events and Starlette would not run the SDK's
        # session managers for a mounted app: they are entered here, once per process.
        message = await receive()
        assert message["type"] == "lifespan.startup"
        if problems := await sync_to_async(serious_check_messages)():
            # The system checks `migrate` runs (bad keys, no mail server): a process that
            # starts anyway would fail later, and quietly. uvicorn exits; the health check fails.
            await send({"type": "lifespan.startup.failed", "message": problems})
            return
        try:
            context = self.gateway.lifespan()
            await context.__aenter__()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        # What start-up built (modules, settings, the kinds' servers: some 150,000 objects)
        # lives as long as the process: out of the cyclic collector's sight, a full collection
        # scans only what requests made since. Each one scanned it all, a pause of 0.15-0.5 s
        # here, every few thousand calls: the gateway's p99 (bench/gateway_calls.py).
        gc.collect()
        gc.freeze()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        await context.__aexit__(None, None, None)
        await send({"type": "lifespan.shutdown.complete"})


def traced(app):
    """``app`` traced with OpenTelemetry when an OTLP endpoint is configured (config.tracing)."""
    from config.tracing import tracing_asgi, tracing_instrument, tracing_provider

    provider = tracing_provider("web")
    if provider is None:
        return app
    tracing_instrument(provider)
    return tracing_asgi(app, provider)


application = traced(PlatformApplication())
