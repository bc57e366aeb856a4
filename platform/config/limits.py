"""Counters every process shares: in Redis when the cache is Redis (CACHE_REDIS_URL or
REDIS_URL), else in this process's cache (the embedded default runs one web process).

Two kinds, each one atomic script and so one round trip to Redis:

- fixed windows (``limit_hit``, ``limit_reached``, ``limits_take``): a window opens at a name's
  first hit and lasts ``window`` seconds. Registration, failed client authentication and
  sign-ins, the anonymous events cap and the gateway's rate limits count here.
- sliding windows (``slot_limiter()``): one slot per request under several windows at once,
  timed by Redis's clock, for an upstream's per-account throttle (``connectors.base.SlotLimiter``).

A leaf helper, so each layer may use it. Names carry client-chosen text (client ids,
usernames, addresses): they are hashed into bounded, safe keys.
"""

import asyncio
import functools
import hashlib
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Sequence

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)
# Redis that does not answer must not hold a request for long: the hot path's counts give up
# after this (and let the request through, see alimits_take).
REDIS_TIMEOUT = 1.0  # seconds

# KEYS: counters; ARGV: limit, window (ms) per key. Over any limit: count nothing, answer the
# (1-based) counter and the milliseconds until its window ends. Else count one hit on each.
_TAKE = """
local refused, wait = 0, 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then ttl = tonumber(ARGV[2 * i]); redis.call('PEXPIRE', key, ttl) end
    if ttl > wait then refused, wait = i, ttl end
  end
end
if refused > 0 then return {refused, wait} end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[2 * i]) end
end
return {0, 0}
"""

# KEYS[1]: a sorted set of granted slots (score: Redis time in ms); ARGV: a unique member,
# then limit, window (ms) pairs. Under every window: add the slot, answer 0; else answer the
# milliseconds until the slot that blocks frees. Integer ms keep Lua's number-to-string exact.
_SLOT = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local longest = 0
for i = 2, #ARGV, 2 do longest = math.max(longest, tonumber(ARGV[i + 1])) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local wait = 0
for i = 2, #ARGV, 2 do
  local limit, window = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local since = '(' .. (now - window)
  local count = redis.call('ZCOUNT', KEYS[1], since, '+inf')
  if count >= limit then
    local blocking = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf', 'WITHSCORES',
      'LIMIT', count - limit, 1)
    wait = math.max(wait, tonumber(blocking[2]) + window - now)
  end
end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], longest)
return 0
"""


def _redis_url() -> str | None:
    """The cache's Redis (its primary, when several servers are named), or None."""
    config = settings.CACHES["default"]
    if not config["BACKEND"].endswith("RedisCache"):
        return None
    location = config["LOCATION"]
    if isinstance(location, str):
        location = location.split(",")
    return location[0]


def _key(name: str) -> str:
    return cache.make_key("limit:" + hashlib.sha256(name.encode()).hexdigest()[:32])


class _Scripts:
    """The scripts on one client (redis-py sends EVALSHA, loading a script only once)."""

    def __init__(self, client) -> None:
        self.client = client
        self.take = client.register_script(_TAKE)
        self.slot = client.register_script(_SLOT)


_sync: dict[str, _Scripts] = {}
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Scripts]] = (
    weakref.WeakKeyDictionary()
)


# redis is imported where a Redis URL is configured, not at the top: a process without Redis
# (the embedded default) never loads the client (about 10 MB of resident memory).


def _sync_scripts(url: str) -> _Scripts:
    if url not in _sync:
        import redis

        _sync[url] = _Scripts(
            redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT * 2, socket_connect_timeout=REDIS_TIMEOUT * 2
            )
        )
    return _sync[url]


def _async_scripts(url: str) -> _Scripts:
    """One client per event loop: an asyncio connection belongs to the loop that opened it."""
    by_url = _async.setdefault(asyncio.get_running_loop(), {})
    if url not in by_url:
        import redis.asyncio

        by_url[url] = _Scripts(
            redis.asyncio.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
            )
        )
    return by_url[url]


# --- Fixed windows ----------------------------------------------------------------------------

Counter = tuple[str, int, float]  # name, limit, window (seconds)
Refusal = tuple[int, float]  # index of the counter over its limit, seconds until its window ends


def _take_args(counters: Sequence[Counter]) -> tuple[list[str], list[int]]:
    keys = [_key(name) for name, _, _ in counters]
    args = [n for _, limit, window in counters for n in (limit, max(1, int(window * 1000)))]
    return keys, args


def _refusal(answer) -> Refusal | None:
    index, wait_ms = (int(n) for n in answer)
    return None if index == 0 else (index - 1, max(wait_ms / 1000, 0.001))


_local_lock = threading.Lock()


def _local_take(counters: Sequence[Counter]) -> Refusal | None:
    """_TAKE in this process's cache: (count, window end) per key, under a lock."""
    with _local_lock:
        now = time.time()
        entries = []
        refusal = None
        for index, (name, limit, window) in enumerate(counters):
            key = _key(name)
            count, ends = cache.get(key) or (0, now + window)
            if ends <= now:
                count, ends = 0, now + window
            entries.append((key, count, ends))
            if count >= limit and (refusal is None or ends - now > refusal[1]):
                refusal = (index, max(ends - now, 0.001))
        if refusal is None:
            for key, count, ends in entries:
                cache.set(key, (count + 1, ends), ends - now)
        return refusal


def limits_take(counters: Sequence[Counter]) -> Refusal | None:
    """Count one hit on every counter, unless one is at its limit: then count nothing and
    answer (which counter, seconds until its window ends)."""
    url = _redis_url()
    if url is None:
        return _local_take(counters)
    keys, args = _take_args(counters)
    return _refusal(_sync_scripts(url).take(keys=keys, args=args))


async def alimits_take(counters: Sequence[Counter]) -> Refusal | None:
    """``limits_take`` for the event loop (one round trip to Redis, no thread hop). When Redis
    cannot count, the request goes through: an outage of the limits' store must not refuse
    every MCP call (the sign-in and registration limiters, off the hot path, fail closed)."""
    url = _redis_url()
    if url is None:
        return _local_take(counters)  # a lock and a dict: nothing to wait for
    import redis

    keys, args = _take_args(counters)
    try:
        return _refusal(await _async_scripts(url).take(keys=keys, args=args))
    except redis.RedisError as exc:
        log.warning("limits not counted, Redis did not answer: %s", type(exc).__name__)
        return None


def limit_hit(name: str, *, limit: int, window: int) -> bool:
    """Count one hit of ``name``; True (and not counted) once it has had ``limit`` hits in
    its current window."""
    return limits_take([(name, limit, window)]) is not None


def limit_reached(name: str, *, limit: int, window: int) -> bool:
    """True when ``name`` has already been hit ``limit`` times in its current window."""
    url = _redis_url()
    if url is None:
        count, ends = cache.get(_key(name)) or (0, 0)
        return ends > time.time() and count >= limit
    return int(_sync_scripts(url).client.get(_key(name)) or 0) >= limit


# --- Sliding windows --------------------------------------------------------------------------


class RedisSlotLimiter:
    """``connectors.base.SlotLimiter`` in Redis: every process takes its slots from one set."""

    def __init__(self, url: str) -> None:
        self._url = url

    async def try_acquire(self, key: str, windows: Sequence[tuple[int, float]]) -> float:
        import redis

        args = [secrets.token_hex(8)]
        for limit, seconds in windows:
            args += [limit, max(1, int(seconds * 1000))]
        try:
            wait_ms = await _async_scripts(self._url).slot(keys=[_key("slots:" + key)], args=args)
        except redis.RedisError as exc:
            # The upstream's own 429 still protects it; a tool call should not fail for this.
            log.warning("slot not counted, Redis did not answer: %s", type(exc).__name__)
            return 0.0
        return 0.0 if int(wait_ms) <= 0 else int(wait_ms) / 1000


def slot_limiter() -> RedisSlotLimiter | None:
    """The slot limiter every process shares, or None without Redis (one process counts alone)."""
    url = _redis_url()
    return None if url is None else _slot_limiter(url)


@functools.cache
def _slot_limiter(url: str) -> RedisSlotLimiter:
    return RedisSlotLimiter(url)
