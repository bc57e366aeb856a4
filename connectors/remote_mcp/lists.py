"""The upstream's tool, resource and prompt lists, cached per connection for a short time.

Keyed by connector and credential (the member for per-member credentials, else the shared
one), so one member's list never answers another's. An upstream that says
``notifications/*/list_changed`` on any response stream drops that connection's entries at
once. Process-local: each web process asks the upstream at most once per TTL per connection.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

LIST_METHODS = ("tools/list", "resources/list", "resources/templates/list", "prompts/list")
CHANGED = {
    "notifications/tools/list_changed": ("tools/list",),
    "notifications/resources/list_changed": ("resources/list", "resources/templates/list"),
    "notifications/prompts/list_changed": ("prompts/list",),
}


class ListCache:
    def __init__(self, size: int = 10_000) -> None:
        self._items: OrderedDict[tuple[str, str, str], tuple[float, dict[str, Any]]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, connection: str, method: str, cursor: str = "") -> dict[str, Any] | None:
        with self._lock:
            entry = self._items.get((connection, method, cursor))
            if entry is None or entry[0] < time.monotonic():
                return None
            return entry[1]

    def put(self, connection: str, method: str, cursor: str, result: dict, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._items[(connection, method, cursor)] = (now + ttl, result)
            self._items.move_to_end((connection, method, cursor))
            # Lists past their time are never answered again: the oldest stored go now (a
            # whole tools/list each), not only once ``size`` lists are waiting.
            while self._items and next(iter(self._items.values()))[0] < now:
                self._items.popitem(last=False)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def invalidate(self, connection: str, methods: tuple[str, ...] = LIST_METHODS) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == connection and k[1] in methods]:
                del self._items[key]

    def notified(self, connection: str, notification: dict[str, Any]) -> None:
        """Drop what ``notification`` (from the upstream) says has changed."""
        methods = CHANGED.get(str(notification.get("method", "")))
        if methods:
            self.invalidate(connection, methods)


LISTS = ListCache()
