"""Celery keeps upstream connections alive: real workers against the emulator with strict
rotation, the sweep as beat runs it, crashes, faults, reconnect and disconnect."""

import os
import signal
import threading
import time
import uuid
from contextlib import contextmanager

import httpx
import kombu
import pytest
from django.core import mail

from config.celery import app as celery_app
from events.models import Event
from tests.support.flow import OAuthClient, mcp_post
from tests.support.oauth import Browser
from tests.support.workers import celery_workers
from upstream import clock, tasks
from upstream.models import UpstreamConnection

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = 3600
DAY = 86400


@pytest.fixture
def fleet(live_url, acme, qbo_emulator, settings, shared_clock):
    """Four QuickBooks connectors of acme, each with its shared company connection, and an MCP
    token of bob for each."""
    from tenants.services import connector_create

    qbo_emulator.point_platform_at(settings)
    client = OAuthClient.register(live_url)
    browser = Browser("bob", "bob-pass-123")
    members = []
    for number in range(4):
        connector = connector_create(
            tenant=acme["tenant"], kind="quickbooks", slug=f"books-{number}", mode="shared"
        )
        connection, issued = qbo_emulator.store_connection(connector=connector)
        token = client.tokens(browser, connector.url)["access_token"]
        members.append(
            {
                "connector": connector,
                "connection": connection,
                "token": token,
                "realm": issued["realmId"],
            }
        )
    return {"emulator": qbo_emulator, "members": members}


def worker_env(fleet, shared_clock, **extra):
    emulator = fleet["emulator"]
    return {
        "QUICKBOOKS_ENVIRONMENT": emulator.base_url,
        "QUICKBOOKS_CLIENT_ID": emulator.client_id,
        "QUICKBOOKS_CLIENT_SECRET": emulator.client_secret,
        "UPSTREAM_CLOCK_OFFSET_FILE": str(shared_clock),
        "UPSTREAM_RETRY_BASE_SECONDS": "0.2",
        **extra,
    }


def advance(fleet, seconds):
    fleet["emulator"].emulator.clock.advance(seconds)
    clock.advance(seconds)


def call_tool(member, tool="company_info"):
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {}},
    }
    response = mcp_post(member["connector"].url, member["token"], payload, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def wait_until(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def all_refreshed_since(members, since):
    rows = UpstreamConnection.objects.filter(pk__in=[m["connection"].pk for m in members])
    return all(
        row.last_refresh_at and row.last_refresh_at >= since and not row.lease_owner for row in rows
    )


def test_two_workers_and_tool_calls_race_across_rotation_windows(fleet, shared_clock):
    emulator = fleet["emulator"].emulator
    emulator.configure(throttle_per_second=None, throttle_concurrent=None, throttle_per_minute=None)
    members = fleet["members"]
    windows = 3
    with celery_workers(2, worker_env(fleet, shared_clock), concurrency=3):
        before = emulator.counters_snapshot()
        for _ in range(windows):
            advance(fleet, 25 * HOUR)  # access tokens expired and past the rotation window
            since = clock.now()
            errors = _hammer(members)
            assert not errors, errors
            wait_until(lambda since=since: all_refreshed_since(members, since), what="refreshes")
        after = emulator.counters_snapshot()

    assert after.get("token.invalid_grant", 0) == before.get("token.invalid_grant", 0)
    # One refresh per connection per window: nobody refreshed twice or with a stale token.
    assert after["token.refresh"] - before.get("token.refresh", 0) == windows * len(members)
    assert after["token.refresh.rotated"] - before.get("token.refresh.rotated", 0) == (
        windows * len(members)
    )
    for member in members:
        row = UpstreamConnection.objects.get(pk=member["connection"].pk)
        assert row.status == "active"
        assert not call_tool(member)["isError"]


def test_the_sweep_and_the_startup_check_hand_their_connections_to_a_worker(fleet, shared_clock):
    """The sweep sends its messages without apply_async per message (one message is built, the
    rest are copies with their own id and ids): a real worker must refresh each connection of
    each of them, once, and the startup check's must arrive forced."""
    emulator = fleet["emulator"].emulator
    emulator.configure(throttle_per_second=None, throttle_concurrent=None, throttle_per_minute=None)
    members = fleet["members"]
    with celery_workers(1, worker_env(fleet, shared_clock), concurrency=4):
        before = emulator.counters_snapshot()
        advance(fleet, 36 * HOUR)  # every connection is due
        since = clock.now()
        assert tasks.upstream_sweep() == len(members)
        wait_until(lambda: all_refreshed_since(members, since), what="the sweep's refreshes")
        swept = emulator.counters_snapshot()
        assert swept["token.refresh"] - before.get("token.refresh", 0) == len(members)

        advance(fleet, 60)  # fresh tokens: only a forced refresh goes to Intuit
        since = clock.now()
        assert tasks.upstream_check_provider("quickbooks") == len(members)
        wait_until(lambda: all_refreshed_since(members, since), what="the forced refreshes")
        forced = emulator.counters_snapshot()
        assert forced["token.refresh"] - swept["token.refresh"] == len(members)


@contextmanager
def unconsumed_queue():
    """A queue of this test's own that no worker reads: what this process sends goes there, and
    ``read()`` takes the messages out (task name, arguments)."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = name
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        queue = kombu.Queue(name, kombu.Exchange(name), routing_key=name)(channel)
        queue.declare()

        def read() -> list[tuple[str, list, dict]]:
            messages = []
            while (message := queue.get(no_ack=True)) is not None:
                args, kwargs, _ = message.decode()
                messages.append((message.headers["task"], args, kwargs))
            return messages

        try:
            yield read
        finally:
            celery_app.conf.task_default_queue = previous
            queue.delete()


def test_the_sweep_sends_a_few_connections_per_message(fleet, settings, monkeypatch):
    """One message per batch of ids, in the sweep's order (the most urgent first), with every
    due connection in exactly one; the start-up check's the same, forced."""
    settings.UPSTREAM_REFRESH_BATCH = 2
    monkeypatch.setattr(tasks, "_SPREAD", 1)  # no smaller messages at the end: batches of 2
    ids = [m["connection"].pk for m in fleet["members"]]
    with unconsumed_queue() as read:
        advance(fleet, 36 * HOUR)  # every connection is due
        assert tasks.upstream_sweep() == 4
        swept = read()
        assert tasks.upstream_check_provider("quickbooks") == 4
        checked = read()
    by_urgency = list(
        UpstreamConnection.objects.filter(pk__in=ids)
        .order_by("access_expires_at", "pk")
        .values_list("pk", flat=True)
    )
    name = "upstream.tasks.upstream_refresh_batch"
    # The most urgent two in one message, the other two in the other (in whatever order the
    # transport hands them out).
    assert sorted((task, args, kwargs) for task, args, kwargs in swept) == sorted(
        [(name, [by_urgency[:2]], {}), (name, [by_urgency[2:]], {})]
    )
    assert sorted((task, args, kwargs) for task, args, kwargs in checked) == [
        (name, [sorted(ids)[:2]], {"force": True}),
        (name, [sorted(ids)[2:]], {"force": True}),
    ]


def test_batches_keep_the_order_and_get_smaller_toward_the_end():
    for count in (1, 4, 31, 32, 100, 500):
        ids = list(range(1000, 1000 + count))
        batches = tasks._batches(ids, 8)
        assert [pk for batch in batches for pk in batch] == ids
        sizes = [len(batch) for batch in batches]
        assert max(sizes) <= 8 and sizes == sorted(sizes, reverse=True)
        # At least as many messages as ids up to the spread: a small sweep reaches as many
        # threads as it can; the last messages of a long one are single ids.
        assert len(batches) >= min(count, tasks._SPREAD)
        assert sizes[-1] == 1
    assert [len(b) for b in tasks._batches(list(range(500)), 8)][:30] == [8] * 30


def test_a_transient_failure_in_a_batch_retries_that_connection_alone(
    fleet, shared_clock, settings, monkeypatch
):
    """The start-up check sends all four connections in one message, forced; Intuit fails the
    first refresh once (503). That connection alone goes back to the queue with its backoff:
    had the whole batch been retried, the three others would have been refreshed twice (the
    check forces them)."""
    emulator = fleet["emulator"].emulator
    emulator.configure(throttle_per_second=None, throttle_concurrent=None, throttle_per_minute=None)
    members = fleet["members"]
    ids = sorted(m["connection"].pk for m in members)
    settings.UPSTREAM_REFRESH_BATCH = 4
    monkeypatch.setattr(tasks, "_SPREAD", 1)
    with celery_workers(1, worker_env(fleet, shared_clock), concurrency=1):
        before = emulator.counters_snapshot()
        last_event = Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        advance(fleet, 60)
        since = clock.now()
        emulator.inject_fault("token", status=503, count=1)
        assert tasks.upstream_check_provider("quickbooks") == 4
        wait_until(lambda: all_refreshed_since(members, since), what="the refreshes")
        after = emulator.counters_snapshot()
    assert after["faults.injected"] - before.get("faults.injected", 0) == 1
    assert after["token.refresh"] - before.get("token.refresh", 0) == 4
    failed = Event.objects.filter(kind="upstream.refresh", outcome="error", pk__gt=last_event)
    assert [e.detail["connection_id"] for e in failed] == [ids[0]]
    for row in UpstreamConnection.objects.filter(pk__in=ids):
        assert row.status == "active" and row.failure_count == 0 and not row.last_error


def test_a_connection_in_a_batch_gets_as_many_attempts_as_one_refreshed_alone(fleet, settings):
    """A batch's first attempt counts: its retry is the second, and after UPSTREAM_RETRY_MAX
    retries the connection is left to the next sweep, as for a single refresh."""
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01
    settings.UPSTREAM_RETRY_MAX = 2
    emulator = fleet["emulator"].emulator
    member = fleet["members"][0]
    others = [m["connection"].pk for m in fleet["members"][1:]]
    UpstreamConnection.objects.filter(pk__in=others).delete()
    celery_app.conf.task_always_eager = True
    try:
        attempts = []
        for send in (
            lambda: tasks.upstream_refresh.delay(member["connection"].pk),
            lambda: tasks.upstream_check_provider("quickbooks"),  # one batch of one
        ):
            advance(fleet, HOUR + 60)
            before = emulator.counters_snapshot().get("faults.injected", 0)
            emulator.inject_fault("token", status=503, count=10)
            send()
            attempts.append(emulator.counters_snapshot()["faults.injected"] - before)
            emulator.clear_faults()
            row = UpstreamConnection.objects.get(pk=member["connection"].pk)
            assert row.status == "error" and row.failure_count == 3
            UpstreamConnection.objects.filter(pk=row.pk).update(status="active", failure_count=0)
    finally:
        celery_app.conf.task_always_eager = False
    assert attempts == [3, 3]


def test_worker_killed_mid_batch_its_unstarted_connections_are_swept_again(
    fleet, shared_clock, settings, monkeypatch
):
    """What the README promises for a worker killed mid-batch: the connections it had not
    started stay claimed by the sweep that queued them until that claim expires (five leases),
    and the first sweep after that queues them again, with the one it was refreshing."""
    members = fleet["members"]
    ids = [m["connection"].pk for m in members]
    settings.UPSTREAM_REFRESH_BATCH = 4
    monkeypatch.setattr(tasks, "_SPREAD", 1)
    emulator = fleet["emulator"].emulator
    advance(fleet, 36 * HOUR)
    since = clock.now()
    emulator.inject_fault("token", kind="slow", delay=3, count=1)
    with celery_workers(1, worker_env(fleet, shared_clock), concurrency=1) as workers:
        assert tasks.upstream_sweep() == 4
        wait_until(
            lambda: UpstreamConnection.objects.filter(pk__in=ids).exclude(lease_owner="").exists(),
            what="the worker to take the first lease",
        )
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=10)
    rows = UpstreamConnection.objects.filter(pk__in=ids)
    assert [r.status for r in rows].count("refreshing") == 1
    assert not any(r.last_refresh_at >= since for r in rows)
    celery_app.conf.task_always_eager = True
    try:
        assert tasks.upstream_sweep() == 0  # still claimed by the killed batch's sweep
        advance(fleet, 5 * settings.UPSTREAM_LEASE_SECONDS - 10)
        assert tasks.upstream_sweep() == 0
        advance(fleet, 11)
        assert tasks.upstream_sweep() == 4
    finally:
        celery_app.conf.task_always_eager = False
    assert all_refreshed_since(members, since)
    assert {r.status for r in UpstreamConnection.objects.filter(pk__in=ids)} == {"active"}


def test_warm_shutdown_mid_batch_hands_the_unstarted_connections_back(
    fleet, shared_clock, settings, monkeypatch
):
    """SIGTERM while a batch runs: the refresh in progress finishes, the batch's other
    connections go back to the queue at once (not after the sweep's claim expires), and the
    next worker on that queue refreshes them."""
    members = fleet["members"]
    ids = [m["connection"].pk for m in members]
    settings.UPSTREAM_REFRESH_BATCH = 4
    monkeypatch.setattr(tasks, "_SPREAD", 1)
    emulator = fleet["emulator"].emulator
    advance(fleet, 36 * HOUR)
    since = clock.now()
    emulator.inject_fault("token", kind="slow", delay=2, count=1)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = worker_env(fleet, shared_clock)
    with celery_workers(1, env, concurrency=1, queue=queue) as workers:
        assert tasks.upstream_sweep() == 4
        wait_until(
            lambda: UpstreamConnection.objects.filter(pk__in=ids).exclude(lease_owner="").exists(),
            what="the worker to take the first lease",
        )
        workers[0].terminate()
        assert workers[0].wait(timeout=30) == 0
    rows = UpstreamConnection.objects.filter(pk__in=ids)
    assert sum(r.last_refresh_at >= since for r in rows) == 1  # the one in progress finished
    assert not any(r.lease_owner for r in rows)
    with celery_workers(1, env, concurrency=1, queue=queue):
        wait_until(lambda: all_refreshed_since(members, since), what="the handed-back refreshes")


def _hammer(members) -> list[str]:
    """Tool calls on every connector while both workers get each connection twice."""
    errors: list[str] = []

    def tools(member):
        for _ in range(3):
            result = call_tool(member)
            if result["isError"]:
                errors.append(result["content"][0]["text"])

    callers = [threading.Thread(target=tools, args=(m,)) for m in members]
    for caller in callers:
        caller.start()
    for member in members:
        tasks.upstream_refresh.delay(member["connection"].pk)
        tasks.upstream_refresh.delay(member["connection"].pk)
    for caller in callers:
        caller.join()
    return errors


def test_idle_connection_survives_150_days_on_the_sweep_alone(fleet, settings):
    celery_app.conf.task_always_eager = True
    try:
        member = fleet["members"][0]
        others = [m["connection"].pk for m in fleet["members"][1:]]
        UpstreamConnection.objects.filter(pk__in=others).delete()
        before = fleet["emulator"].emulator.counters_snapshot()
        step = 20 * HOUR
        for _ in range(int(150 * DAY / step)):
            advance(fleet, step)
            tasks.upstream_sweep()  # what beat runs every minute
        row = UpstreamConnection.objects.get(pk=member["connection"].pk)
        assert row.status == "active"
        after = fleet["emulator"].emulator.counters_snapshot()
        assert after.get("token.refresh.invalid_grant", 0) == before.get(
            "token.refresh.invalid_grant", 0
        )
        # The sweep refreshed whenever the last refresh was a day old (here every other 20 h
        # step), so the rolling 100-day window never ran out and each daily rotation was kept.
        refreshes = after["token.refresh"] - before.get("token.refresh", 0)
        assert refreshes >= 150 // 2
        assert after["token.refresh.rotated"] - before.get("token.refresh.rotated", 0) == refreshes
        assert not call_tool(member)["isError"]
    finally:
        celery_app.conf.task_always_eager = False


def test_worker_killed_mid_refresh_leaves_the_connection_usable(fleet, shared_clock, settings):
    member = fleet["members"][0]
    emulator = fleet["emulator"].emulator
    advance(fleet, HOUR + 60)
    emulator.inject_fault("token", kind="slow", delay=3, count=1)
    env = worker_env(fleet, shared_clock)
    with celery_workers(1, env, concurrency=1) as workers:
        tasks.upstream_refresh.delay(member["connection"].pk)
        wait_until(
            lambda: UpstreamConnection.objects.get(pk=member["connection"].pk).lease_owner,
            what="the worker to take the lease",
        )
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=10)
    row = UpstreamConnection.objects.get(pk=member["connection"].pk)
    assert row.status == "refreshing"  # the dead worker's lease, until it expires
    # Its lease ends on the platform's clock (shared with the workers), not the wall clock's.
    advance(fleet, settings.UPSTREAM_LEASE_SECONDS + 1)
    assert not call_tool(member)["isError"]
    row = UpstreamConnection.objects.get(pk=member["connection"].pk)
    assert row.status == "active" and not row.lease_owner


def test_fault_bursts_end_active_after_retries(fleet, settings):
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01
    celery_app.conf.task_always_eager = True
    try:
        emulator = fleet["emulator"].emulator
        for member, fault in zip(
            fleet["members"][:3],
            [{"status": 503}, {"kind": "drop"}, {"status": 429}],
            strict=True,
        ):
            advance(fleet, HOUR + 60)
            emulator.inject_fault("token", count=3, **fault)
            tasks.upstream_refresh.delay(member["connection"].pk)
            row = UpstreamConnection.objects.get(pk=member["connection"].pk)
            assert row.status == "active", (fault, row.last_error)
            assert row.failure_count == 0
            assert not call_tool(member)["isError"]
    finally:
        celery_app.conf.task_always_eager = False


def test_invalid_grant_needs_reauth_one_email_tool_error_and_reconnect(fleet, live_url, settings):
    from django.contrib.auth.models import User

    User.objects.filter(username="alice").update(email="alice@acme.test")
    celery_app.conf.task_always_eager = True
    try:
        member = fleet["members"][0]
        emulator = fleet["emulator"]
        emulator.emulator.disconnect(member["realm"])
        advance(fleet, HOUR + 60)
        tasks.upstream_refresh.delay(member["connection"].pk)
        tasks.upstream_refresh.delay(member["connection"].pk)
        row = UpstreamConnection.objects.get(pk=member["connection"].pk)
        assert row.status == "needs_reauth"
        assert len(mail.outbox) == 1
        assert mail.outbox[0].to == ["alice@acme.test"]
        link = f"{live_url}/dashboard/connectors/{member['connector'].pk}/connect"
        assert link in mail.outbox[0].body
        result = call_tool(member)
        assert result["isError"] and link in result["content"][0]["text"]
        tasks.upstream_sweep()
        assert len(mail.outbox) == 1  # once per loss, not per attempt

        # The admin reconnects from the dashboard: active again, tools work.
        emulator.emulator.configure(
            redirect_uris=[f"{live_url}/upstream/quickbooks/callback"], auto_approve=True
        )
        admin = Browser("alice", "alice-pass-123", also_visits=(emulator.base_url,))
        admin.sign_in(live_url)
        assert admin.submit(link).status_code == 200
        row = UpstreamConnection.objects.get(pk=member["connection"].pk)
        assert row.status == "active" and row.reauth_notified_at is None
        assert not call_tool(member)["isError"]
    finally:
        celery_app.conf.task_always_eager = False


def test_disconnect_revokes_at_the_provider_and_ends_the_mcp_tokens(fleet, live_url):
    member = fleet["members"][0]
    before = fleet["emulator"].emulator.counters_snapshot()
    admin = Browser("alice", "alice-pass-123")
    admin.sign_in(live_url)
    page = admin.http.get(f"{live_url}/dashboard/connectors/{member['connector'].pk}/connect")
    assert page.status_code == 200
    csrf = admin.http.cookies.get("csrftoken")
    response = admin.http.post(
        f"{live_url}/dashboard/connections/{member['connection'].pk}/disconnect",
        data={"csrfmiddlewaretoken": csrf},
        headers={"Referer": live_url + "/"},
    )
    assert response.status_code == 200, response.text
    after = fleet["emulator"].emulator.counters_snapshot()
    assert after.get("grants.revoked", 0) == before.get("grants.revoked", 0) + 1
    assert UpstreamConnection.objects.get(pk=member["connection"].pk).status == "revoked"
    refused = mcp_post(member["connector"].url, member["token"])
    assert refused.status_code == 401


def test_removing_a_member_ends_their_per_user_connection(live_url, acme, qbo_emulator, settings):
    from django.contrib.auth.models import User

    from tenants.models import Membership
    from tenants.services import connector_create

    qbo_emulator.point_platform_at(settings)
    connector = connector_create(tenant=acme["tenant"], kind="quickbooks", slug="mine")
    connection, _ = qbo_emulator.store_connection(
        connector=connector, user=User.objects.get(username="bob")
    )
    before = qbo_emulator.emulator.counters_snapshot().get("grants.revoked", 0)
    Membership.objects.filter(user__username="bob", tenant=acme["tenant"]).delete()
    assert UpstreamConnection.objects.get(pk=connection.pk).status == "revoked"
    assert qbo_emulator.emulator.counters_snapshot()["grants.revoked"] == before + 1


def test_status_counts_and_last_sweep_are_queryable(fleet, live_url):
    from upstream.selectors import upstream_last_sweep, upstream_status_counts

    assert upstream_last_sweep() is None
    assert httpx.get(f"{live_url}/readyz").json()["checks"]["beat"] == "not yet run"
    UpstreamConnection.objects.filter(pk=fleet["members"][0]["connection"].pk).update(
        status="needs_reauth"
    )
    counts = upstream_status_counts()
    assert counts["active"] == 3 and counts["needs_reauth"] == 1 and counts["revoked"] == 0
    connector_ids = [fleet["members"][0]["connector"].pk]
    assert upstream_status_counts(connector_ids=connector_ids)["active"] == 0
    celery_app.conf.task_always_eager = True
    try:
        tasks.upstream_sweep()
    finally:
        celery_app.conf.task_always_eager = False
    assert upstream_last_sweep() is not None
    assert httpx.get(f"{live_url}/readyz").json()["checks"]["beat"] == "ok"
    # Beat stops: three missed sweeps later, readiness says so.
    from datetime import timedelta

    from django.utils import timezone

    from events.models import Event

    Event.objects.filter(kind="upstream.sweep").update(created=timezone.now() - timedelta(hours=1))
    stalled = httpx.get(f"{live_url}/readyz")
    assert stalled.status_code == 503
    assert stalled.json()["checks"]["beat"].startswith("stalled")
