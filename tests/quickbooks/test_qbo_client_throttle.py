"""RealmThrottle: Intuit's per-company windows, kept on our side, with a hand-moved clock."""

from __future__ import annotations

import pytest

from connectors.quickbooks.client import RealmThrottle
from connectors.quickbooks.throttle import SWEEP_AT


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeMonotonic()


def test_ten_per_second_then_wait_for_the_window(clock):
    throttle = RealmThrottle(per_second=10, per_minute=500, margin=0.05, clock=clock)

    granted = [throttle.try_acquire("realm-a") for _ in range(10)]
    wait = throttle.try_acquire("realm-a")

    assert granted == [0.0] * 10
    assert wait == pytest.approx(1.05)
    clock.now += 1.0
    assert throttle.try_acquire("realm-a") > 0  # still inside the padded window
    clock.now += 0.06
    assert throttle.try_acquire("realm-a") == 0.0


def test_no_double_burst_across_a_second_boundary(clock):
    """A token bucket would let 10 more through right away; a sliding window does not."""
    throttle = RealmThrottle(per_second=10, per_minute=500, margin=0, clock=clock)
    for _ in range(10):  # one every 0.1 s: at 0.0, 0.1, ... 0.9
        assert throttle.try_acquire("r") == 0.0
        clock.now += 0.1

    clock.now += 0.15  # now 1.15: the ones sent at 0.0 and 0.1 have left the last second

    granted = sum(1 for _ in range(10) if throttle.try_acquire("r") == 0.0)
    assert granted == 2


def test_five_hundred_per_minute(clock):
    throttle = RealmThrottle(per_second=1000, per_minute=500, margin=0, clock=clock)
    for _ in range(500):
        assert throttle.try_acquire("r") == 0.0
        clock.now += 0.1  # 50 seconds in all

    assert throttle.try_acquire("r") == pytest.approx(10.0)
    clock.now += 10.01
    assert throttle.try_acquire("r") == 0.0


def test_realms_are_counted_separately(clock):
    throttle = RealmThrottle(per_second=1, per_minute=10, clock=clock)

    assert throttle.try_acquire("a") == 0.0
    assert throttle.try_acquire("b") == 0.0
    assert throttle.try_acquire("a") > 0
    throttle.forget("a")
    assert throttle.try_acquire("a") == 0.0


def test_acquire_blocking_sleeps_until_a_slot_frees(monkeypatch, clock):
    throttle = RealmThrottle(per_second=1, per_minute=10, margin=0, clock=clock)
    slept = []

    def fake_sleep(seconds):
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr("connectors.quickbooks.throttle.time.sleep", fake_sleep)
    throttle.acquire_blocking("r")
    throttle.acquire_blocking("r")

    assert slept == [pytest.approx(1.0)]


def test_realms_idle_for_a_minute_are_forgotten_once_many_are_counted(clock):
    """A process keeps no count for every company it ever called: past SWEEP_AT realms, those
    with no request in the minute window are dropped (they limit nothing)."""
    throttle = RealmThrottle(per_second=10, per_minute=500, margin=0, clock=clock)
    for n in range(SWEEP_AT):
        assert throttle.try_acquire(f"idle-{n}") == 0.0
    assert len(throttle) == SWEEP_AT
    clock.now += 61
    assert throttle.try_acquire("busy") == 0.0  # one more than SWEEP_AT: the idle ones go
    assert len(throttle) == 1
    # A forgotten realm starts a fresh count, as it would after a minute anyway.
    assert throttle.try_acquire("idle-0") == 0.0
