"""Keep each company under Intuit's request limits before Intuit has to say 429.

In-process only: every worker process keeps its own windows, so N processes calling one company
can together exceed the limits (then Intuit's 429 still protects us, as `Throttled`). A shared
limiter (e.g. in Redis) would be the next step if that happens in practice.

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

import anyio


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
            return 0.0

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
