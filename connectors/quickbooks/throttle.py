"""Keep each company under Intuit's request limits before Intuit has to say 429.

`RealmThrottle` counts in its own process; `shared(limiter)` gives the same windows counted in
the platform's `SlotLimiter` (Redis), so every web process takes its slots from one count and N
replicas together stay under the limits. Intuit's 429 still protects us (as `Throttled`).

Sliding windows rather than a token bucket: a bucket of 10 refilled at 10/s lets up to 20
requests through within one second, which a sliding-window server rejects. The windows are a
little longer than Intuit's (`margin`), so network jitter cannot turn a request sent just after
a window closes into one received just inside it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from connectors.base import SlotLimiter

# Past this many realms counted, the idle ones are dropped (RealmThrottle._sweep).
SWEEP_AT = 1000


class RealmThrottle:
    """At most `per_second` requests in any one second and `per_minute` in any minute, per realm."""

    def __init__(
        self,
        *,
        per_second: int = 10,
        per_minute: int = 500,
        margin: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.per_second = per_second
        self.per_minute = per_minute
        self._second = 1.0 + margin
        self._minute = 60.0 + margin
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}
        self._sweep_at = SWEEP_AT

    @property
    def windows(self) -> tuple[tuple[int, float], ...]:
        """(limit, seconds) of each window, margins included."""
        return ((self.per_second, self._second), (self.per_minute, self._minute))

    def shared(self, limiter: SlotLimiter | None) -> RealmThrottle | SharedRealmThrottle:
        """These windows counted in ``limiter`` (every process), or this throttle without one."""
        return self if limiter is None else SharedRealmThrottle(limiter, self.windows)

    def try_acquire(self, realm_id: str) -> float:
        """Take a slot now and return 0.0, or return how many seconds until one frees up."""
        with self._lock:
            now = self._clock()
            sent = self._sent.setdefault(realm_id, deque())
            while sent and sent[0] <= now - self._minute:
                sent.popleft()
            waits = []
            if len(sent) >= self.per_minute:
                waits.append(sent[-self.per_minute] + self._minute - now)
            if len(sent) >= self.per_second and sent[-self.per_second] > now - self._second:
                waits.append(sent[-self.per_second] + self._second - now)
            if waits:
                return max(max(waits), 0.001)
            sent.append(now)
            if len(self._sent) > self._sweep_at:
                self._sweep(now)
            return 0.0

    def _sweep(self, now: float) -> None:
        """Drop the realms with no request inside the minute window: they limit nothing, and a
        process would otherwise keep one for every company it ever called."""
        cutoff = now - self._minute
        self._sent = {r: sent for r, sent in self._sent.items() if sent and sent[-1] > cutoff}
        self._sweep_at = max(SWEEP_AT, 2 * len(self._sent))  # amortised: rare as realms grow

    def __len__(self) -> int:
        """The realms whose requests are counted now."""
        return len(self._sent)

    async def acquire(self, realm_id: str) -> None:
        """Wait (asynchronously) until the realm may send one more request, and take the slot."""
        while (wait := self.try_acquire(realm_id)) > 0:
            await anyio.sleep(wait)

    def acquire_blocking(self, realm_id: str) -> None:
        """`acquire` for synchronous code."""
        while (wait := self.try_acquire(realm_id)) > 0:
            time.sleep(wait)

    def forget(self, realm_id: str) -> None:
        """Drop a realm's history (e.g. when the company is disconnected)."""
        with self._lock:
            self._sent.pop(realm_id, None)


class SharedRealmThrottle:
    """RealmThrottle's windows kept in a SlotLimiter that every process shares."""

    def __init__(self, limiter: SlotLimiter, windows: tuple[tuple[int, float], ...]):
        self._limiter = limiter
        self._windows = windows

    async def acquire(self, realm_id: str) -> None:
        """Wait (asynchronously) until the realm may send one more request, and take the slot."""
        key = f"quickbooks:realm:{realm_id}"
        while (wait := await self._limiter.try_acquire(key, self._windows)) > 0:
            await anyio.sleep(wait)
