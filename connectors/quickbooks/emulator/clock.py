"""The emulator's notion of time, so tests move time instead of sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time plus an offset that tests can advance.

    By default the clock runs with real time (so rate windows behave as they do at Intuit) and
    `advance()` jumps it forward. `freeze()` stops it, for tests that need exact instants.
    """

    def __init__(
        self,
        start: datetime | None = None,
        *,
        frozen: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._initial_start = start
        self._initial_frozen = frozen
        self.reset()

    def reset(self) -> None:
        """Back to the state the clock was created in (start time, frozen or running)."""
        with self._lock:
            self._anchor = (self._initial_start or datetime.now(UTC)).astimezone(UTC)
            self._anchor_monotonic = self._monotonic()
            self._frozen = self._initial_frozen

    def now(self) -> datetime:
        """Current emulated time (timezone-aware, UTC)."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> datetime:
        if self._frozen:
            return self._anchor
        return self._anchor + timedelta(seconds=self._monotonic() - self._anchor_monotonic)

    def advance(self, seconds: float) -> datetime:
        """Jump forward by `seconds` (may be fractional); returns the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._anchor = self._now_locked() + timedelta(seconds=seconds)
            self._anchor_monotonic = self._monotonic()
            return self._anchor

    def freeze(self) -> datetime:
        """Stop the clock at the current instant; only `advance()` moves it afterwards."""
        with self._lock:
            self._anchor = self._now_locked()
            self._frozen = True
            return self._anchor

    def unfreeze(self) -> None:
        """Let the clock run with real time again, from where it stands."""
        with self._lock:
            self._anchor = self._now_locked()
            self._anchor_monotonic = self._monotonic()
            self._frozen = False

    @property
    def frozen(self) -> bool:
        return self._frozen
