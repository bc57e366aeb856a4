"""The platform's notion of now for upstream token expiry, which tests move instead of sleeping.

Tests (and benchmarks) that run Celery workers in other processes share the offset through
the file named by ``UPSTREAM_CLOCK_OFFSET_FILE`` (honoured only in the embedded default).
"""

from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

_offset = timedelta(0)


def _shared_file() -> Path | None:
    path = getattr(settings, "UPSTREAM_CLOCK_OFFSET_FILE", "")
    return Path(path) if path and settings.EMBEDDED else None


def offset() -> timedelta:
    shared = _shared_file()
    if shared is not None:
        try:
            return timedelta(seconds=float(shared.read_text() or 0))
        except (OSError, ValueError):
            return timedelta(0)
    return _offset


def now() -> datetime:
    return timezone.now() + offset()


def advance(seconds: float) -> None:
    """Move the upstream clock forward (tests and benchmarks only)."""
    global _offset
    shared = _shared_file()
    if shared is not None:
        shared.write_text(str(offset().total_seconds() + seconds))
    else:
        _offset += timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    _offset = timedelta(0)
    shared = _shared_file()
    if shared is not None:
        shared.write_text("0")
