"""Liveness and readiness."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Ready when every backing service answers; each check says which one is down."""
    checks = {"database": _check(_database)}
    if settings.REDIS_URL:
        checks["broker"] = _check(_redis_ping, settings.REDIS_URL)
    if settings.CACHE_REDIS_URL and settings.CACHE_REDIS_URL != settings.REDIS_URL:
        checks["cache"] = _check(_redis_ping, settings.CACHE_REDIS_URL)
    # The sweeps are read from the database: without it, nothing can be said of them (and
    # asking would only wait for the pool's timeout a second time).
    checks["beat"] = _beat_status() if checks["database"] == "ok" else "unknown"
    ready = all(value in ("ok", "not yet run") for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def _check(probe, *args) -> str:
    try:
        probe(*args)
    except Exception as exc:  # any failure means not ready; say which
        return f"error: {exc.__class__.__name__}"
    return "ok"


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis_ping(url: str) -> None:
    import redis

    redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()


def _beat_status() -> str:
    """Stalled when the newest upstream sweep is older than three sweep intervals."""
    from datetime import timedelta

    from django.utils import timezone

    from upstream.selectors import upstream_last_sweep

    try:
        last = upstream_last_sweep()
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
    if last is None:
        return "not yet run"
    if last < timezone.now() - timedelta(seconds=3 * settings.UPSTREAM_SWEEP_SECONDS):
        return f"stalled: last sweep {last.isoformat()}"
    return "ok"
