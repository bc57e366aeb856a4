"""Fixed-window counters in the cache (Redis when configured, so every process shares them).

Every limiter of the platform counts here: registration and failed client authentication
(authserver), failed sign-ins (tenants), the anonymous events cap (events). A leaf helper, so
each layer may use it.
"""

import hashlib
import time

from django.core.cache import cache


def _key(name: str, window: int) -> str:
    # Names carry client-chosen text (client ids, usernames): hash them to a bounded, safe key.
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
