"""config.limits: the one fixed-window counter every limiter of the platform counts in."""

import pytest

from config.limits import limit_hit, limit_reached
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
