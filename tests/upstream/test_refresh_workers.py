"""Celery keeps upstream connections alive: real workers against the emulator with strict
rotation, the sweep as beat runs it, crashes, faults, reconnect and disconnect."""

import os
import signal
import threading
import time

import httpx
import pytest
from django.core import mail

from config.celery import app as celery_app
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
    """The sweep sends its messages without apply_async per id (one message is built, the rest
    are copies with their own id and argument): a real worker must run each of them, once,
    with its own connection id, and the startup check's must arrive forced."""
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
