"""Liveness and readiness."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"error: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"error: {exc.__class__.__name__}"
    checks["beat"] = _beat_status()
    ready = all(value in ("ok", "not yet run") for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


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
