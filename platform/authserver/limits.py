"""Fixed-window counters in the cache (Redis when configured, so every replica shares them)."""

import hashlib
import time

from django.core.cache import cache


def _key(name: str, window: int) -> str:
    # Names carry client-chosen text (client ids): hash them to a bounded, safe cache key.
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"limit:{digest}:{int(time.time() // window)}"


def limit_hit(name: str, *, limit: int, window: int) -> bool:
    """Count one hit of ``name`` in the current window; True once it is over ``limit``."""
    key = _key(name, window)
    cache.add(key, 0, window)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, window)
        count = 1
    return count > limit


def limit_reached(name: str, *, limit: int, window: int) -> bool:
    """True when ``name`` has already been hit ``limit`` times in the current window."""
    return (cache.get(_key(name, window)) or 0) >= limit
