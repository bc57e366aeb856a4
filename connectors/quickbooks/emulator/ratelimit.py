"""Per-company request limits, counted the way Intuit documents them."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass


@dataclass
class ThrottleLimits:
    """Per-realm limits; None switches one off. Intuit: 10/second, 500/minute, 10 at once."""

    per_second: int | None = 10
    per_minute: int | None = 500
    concurrent: int | None = 10


class RealmRateLimiter:
    """Sliding windows over the last second and minute, plus an in-flight count, per realm.

    Not thread-safe on its own: the emulator calls it under its state lock. Times are seconds on
    the emulator's clock, so a test that freezes the clock controls the windows exactly.
    """

    def __init__(self) -> None:
        self._history: dict[str, deque[float]] = {}
        self._in_flight: Counter[str] = Counter()

    def try_enter(self, realm_id: str, now: float, limits: ThrottleLimits) -> bool:
        """Admit one request (and count it) or refuse it (not counted)."""
        history = self._history.setdefault(realm_id, deque())
        while history and history[0] <= now - 60:
            history.popleft()
        if limits.concurrent is not None and self._in_flight[realm_id] >= limits.concurrent:
            return False
        if limits.per_minute is not None and len(history) >= limits.per_minute:
            return False
        if limits.per_second is not None:
            in_last_second = 0
            for moment in reversed(history):
                if moment <= now - 1:
                    break
                in_last_second += 1
            if in_last_second >= limits.per_second:
                return False
        history.append(now)
        self._in_flight[realm_id] += 1
        return True

    def leave(self, realm_id: str) -> None:
        """The admitted request has finished."""
        self._in_flight[realm_id] -= 1
        if self._in_flight[realm_id] <= 0:
            del self._in_flight[realm_id]

    def in_flight(self, realm_id: str) -> int:
        return self._in_flight[realm_id]
