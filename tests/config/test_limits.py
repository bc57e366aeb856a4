"""config.limits: the one fixed-window counter every limiter of the platform counts in."""

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings

from config.limits import RedisSlotLimiter, limit_hit, limit_reached, slot_limiter
from events.services import ANONYMOUS_EVENT_LIMIT, ANONYMOUS_EVENT_WINDOW, _anonymous_event_allowed
from tenants.signin import signin_throttled

pytestmark = pytest.mark.django_db


def test_a_counter_allows_its_limit_then_refuses_until_the_window_ends():
    name = "dcr:203.0.113.7"
    assert [limit_hit(name, limit=3, window=60) for _ in range(4)] == [False, False, False, True]
    assert limit_reached(name, limit=3, window=60)
    assert not limit_reached("dcr:203.0.113.8", limit=3, window=60)  # another name, own count


def test_client_chosen_text_is_a_safe_counter_name():
    name = "client-auth:" + "x y\n\u00e9" * 200
    assert not limit_hit(name, limit=1, window=60)
    assert limit_hit(name, limit=1, window=60)


def test_sign_in_failures_count_in_the_shared_helper(settings):
    settings.SIGNIN_ACCOUNT_LIMIT = 2
    for _ in range(2):
        limit_hit("signin-fail:account:alice", limit=2, window=settings.SIGNIN_FAILURE_WINDOW)
    assert signin_throttled(None, "  Alice ")


def test_the_anonymous_events_cap_counts_in_the_shared_helper():
    for _ in range(ANONYMOUS_EVENT_LIMIT):
        limit_hit(
            "anon-events:7:198.51.100.1", limit=ANONYMOUS_EVENT_LIMIT, window=ANONYMOUS_EVENT_WINDOW
        )
    assert not _anonymous_event_allowed(7, "198.51.100.1")
    assert _anonymous_event_allowed(7, "198.51.100.2")


# --- Shared by every process (Redis) ----------------------------------------------------------

needs_redis = pytest.mark.skipif(
    not settings.CACHE_REDIS_URL, reason="counters are shared across processes only in Redis"
)

COUNTING_PROCESS = """
import sys, django
django.setup()
from config.limits import limit_hit
granted = sum(not limit_hit(sys.argv[1], limit=50, window=60) for _ in range(40))
print(granted)
"""


@needs_redis
def test_processes_counting_at_once_never_overshoot_the_limit():
    name = f"race:{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    counters = [
        subprocess.Popen(
            [sys.executable, "-c", COUNTING_PROCESS, name], env=env, stdout=subprocess.PIPE
        )
        for _ in range(4)
    ]
    granted = [int(process.communicate(timeout=120)[0]) for process in counters]
    assert sum(granted) == 50  # 160 hits from four processes, 50 allowed in all
    assert limit_reached(name, limit=50, window=60)


@needs_redis
def test_the_slot_limiter_grants_each_window_once_across_clients():
    limiter = slot_limiter()
    assert limiter is not None
    windows = ((10, 1.05), (500, 60.05))

    async def race():
        # Two limiters (two processes' worth of clients) taking slots of one company at once.
        other = RedisSlotLimiter(settings.CACHE_REDIS_URL)
        takers = [limiter, other] * 12
        return await asyncio.gather(*(t.try_acquire("realm:42", windows) for t in takers))

    waits = asyncio.run(race())
    assert waits.count(0.0) == 10
    assert all(0 < wait <= 1.05 for wait in waits if wait)


def test_without_redis_there_is_no_shared_limiter(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert slot_limiter() is None
