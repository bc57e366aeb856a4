"""The bearer check on PostgreSQL, sent from the event loop on a connection of the gateway's
own (gateway.bearer.BearerChecks, gateway.loop_statement): Django's answers, no worker thread
and no pooled connection, nothing kept between checks, a session the server ended replaced
without a failed request, and a locked table holding up the checks but never the loop."""

import asyncio
import threading
import time

import httpx
import psycopg
import pytest
from django.db import connection

from gateway import bearer
from gateway.bearer import GENERATION_TABLE, BearerChecks, bearer_check
from tests.support.flow import OAuthClient, mcp_post, stored_access_token
from tests.support.oauth import Browser
from tests.support.sql import loop_connection_open, other_session, postgres_only

pytestmark = [
    postgres_only("the loop's own connection is PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]

ECHO = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"text": "hi"}},
}


def _revoke_elsewhere(token_id: int) -> None:
    """Revoke (delete) an access token from another connection, as DOT's revoke() does."""
    from oauth2_provider.models import AccessToken, RefreshToken

    from authserver.models import TokenAudience

    with other_session() as admin, admin.transaction():
        admin.execute(
            f"UPDATE {RefreshToken._meta.db_table} SET access_token_id = NULL "
            "WHERE access_token_id = %s",
            [token_id],
        )
        admin.execute(
            f"DELETE FROM {TokenAudience._meta.db_table} WHERE access_token_id = %s", [token_id]
        )
        admin.execute(f"DELETE FROM {AccessToken._meta.db_table} WHERE id = %s", [token_id])


def _session_ended(admin: psycopg.Connection, pid: int) -> None:
    assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
    deadline = time.monotonic() + 10
    while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[
        0
    ]:
        assert time.monotonic() < deadline, "the session did not end"
        time.sleep(0.02)


@pytest.fixture
def token(live_url, acme):
    client = OAuthClient.register(live_url)
    return client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)["access_token"]


@pytest.fixture
def no_pool(monkeypatch):
    """Every checkout of Django's pool in this process while the test runs, by thread."""
    taken = []
    pool = connection.pool
    real = pool.getconn

    def getconn(*args, **kwargs):
        taken.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(pool, "getconn", getconn)
    return taken


class _Checks(BearerChecks):
    """BearerChecks that count the checks sent to a worker thread."""

    def __init__(self) -> None:
        super().__init__()
        self.in_thread = 0
        real = self._in_thread

        async def counted(*args):
            self.in_thread += 1
            return await real(*args)

        self._in_thread = counted


def test_checks_are_sent_from_the_loop_and_a_revocation_bites_at_once(token, no_pool):
    expected = [
        bearer_check("acme", "echo", token),
        bearer_check("acme", "echo", "not-a-token"),
        bearer_check("acme", "echo", None),
    ]
    no_pool.clear()
    stored = stored_access_token(token)
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            answers = [
                await checks("acme", "echo", token),
                await checks("acme", "echo", "not-a-token"),
                await checks("acme", "echo", None),
                await checks("acme", "no-such-connector", token),
            ]
            _revoke_elsewhere(stored.pk)
            after = await checks("acme", "echo", token)
            together = await asyncio.gather(*(checks("acme", "echo", None) for _ in range(20)))
            return answers, after, together

    answers, after, together = asyncio.run(run())
    assert answers == [*expected, None]  # the values Django's cursor and converters give
    assert answers[0].member_role == "member" and answers[0].token_expires is not None
    assert answers[0].connector_settings == expected[0].connector_settings
    assert after.token_id is None and after.connector_id == answers[0].connector_id
    assert together == [expected[2]] * 20  # in flight together, each its own answer
    assert checks.in_thread == 0, "a check went to a worker thread"
    assert no_pool == [], "a check took a pooled connection"


def test_the_loop_reads_rows_in_binary_and_loads_them_as_django_does(token, acme):
    """Binary rows cost PostgreSQL no text rendering and this process no parse (integers,
    booleans, the expiry time); jsonb comes as its text, for the JSONField's converter."""
    from tenants.models import Connector

    policy = {"roles": {"member": {"deny": ["wipe", 'é \u2028 "q"']}}, "n": [1, 2.5, None]}
    Connector.objects.filter(pk=acme["connector"].pk).update(tool_policy=policy)
    expected = bearer_check("acme", "echo", token)
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            answer = await checks("acme", "echo", token)
            return answer, checks._postgres._transformer.pgresult

    answer, result = asyncio.run(run())
    assert [result.fformat(i) for i in range(result.nfields)] == [1] * result.nfields
    assert answer == expected and answer.tool_policy == policy
    assert answer.token_expires.tzinfo == expected.token_expires.tzinfo
    assert checks.in_thread == 0


def test_the_loops_connection_holds_no_transaction_between_checks(token):
    checks = _Checks()

    async def check_then_look():
        async with loop_connection_open(checks):
            await checks("acme", "echo", token)
            with other_session() as admin:
                return admin.execute(
                    "SELECT state, backend_xmin FROM pg_stat_activity WHERE pid = %s",
                    [checks._postgres.backend_pid],
                ).fetchone()

    state, xmin = asyncio.run(check_then_look())
    assert (state, xmin) == ("idle", None)  # not "idle in transaction", no snapshot held
    assert checks.in_thread == 0


@pytest.mark.parametrize("noticed", [True, False], ids=["noticed", "sent-before-noticed"])
def test_a_session_the_server_ended_is_replaced_without_a_failed_check(token, noticed, monkeypatch):
    """Whether the loop read the server's goodbye before the next check or only while
    reading that check's answer, the check is answered (by a worker thread) and the next ones
    go out on a new session. (No lease: under one, the kept answer would need no session.)"""
    monkeypatch.setattr(bearer, "LEASE_SECONDS", 0.0)
    checks = _Checks()
    expected = bearer_check("acme", "echo", token)

    async def run():
        async with loop_connection_open(checks):
            first_pid = checks._postgres.backend_pid
            assert await checks("acme", "echo", token) == expected
            with other_session() as admin:
                _session_ended(admin, first_pid)
            if noticed:
                await asyncio.sleep(0.1)
            during = await asyncio.gather(*(checks("acme", "echo", token) for _ in range(3)))
            deadline = time.monotonic() + 10
            while not await checks.open():
                assert time.monotonic() < deadline, "no new session"
                await asyncio.sleep(0.05)
            in_thread = checks.in_thread
            after = await checks("acme", "echo", token)
            assert checks.in_thread == in_thread, "the new session did not answer"
            return first_pid, checks._postgres.backend_pid, during, after

    first_pid, second_pid, during, after = asyncio.run(run())
    assert during == [expected] * 3 and after == expected
    assert second_pid != first_pid
    assert checks.in_thread >= 1


def test_a_locked_table_holds_up_the_check_but_not_the_loop(token, no_pool):
    """A check waiting on PostgreSQL (here a lock held by another session) leaves the loop
    free for everything else, takes no pooled connection, and is answered once the lock goes."""
    checks = _Checks()
    expected = bearer_check("acme", "echo", token)
    no_pool.clear()

    async def run():
        async with loop_connection_open(checks):
            with other_session() as admin:
                admin.execute("BEGIN")
                admin.execute("LOCK TABLE oauth2_provider_accesstoken IN ACCESS EXCLUSIVE MODE")
                waiting = [asyncio.ensure_future(checks("acme", "echo", token)) for _ in range(3)]
                # The loop runs 30 ticks while the checks wait (a check that held the loop
                # would hold it until the lock went, which only this task can let go of).
                for _ in range(30):
                    await asyncio.sleep(0.01)
                assert not any(w.done() for w in waiting), "a check was answered under the lock"
                admin.execute("COMMIT")
            return await asyncio.wait_for(asyncio.gather(*waiting), 10)

    answers = asyncio.run(run())
    assert answers == [expected] * 3
    assert checks.in_thread == 0 and no_pool == []


def test_the_live_gateway_checks_from_the_loop(_live_app, token, acme):
    """The live server's checks run on its own connection, opened at start-up: with the
    tables the check reads locked (the generation's too: the token's answer is kept), a
    request waits on that session (the lease's renewal on its own, no pooled one), /healthz
    still answers, and the request is answered once the lock goes."""
    url = acme["connector"].url
    gateway_checks = _live_app._server.config.app.gateway._check
    deadline = time.monotonic() + 10
    while True:  # an earlier test may have ended every session: the first check reopens
        assert mcp_post(url, token, ECHO).status_code == 200
        lease = gateway_checks._lease_statements
        pid = gateway_checks._postgres.backend_pid
        if pid is not None and lease is not None and lease.backend_pid is not None:
            break
        assert time.monotonic() < deadline, "the gateway has no connections of its own"
        time.sleep(0.05)

    def lock_waits(observer, count):
        deadline = time.monotonic() + 10
        while True:
            waits = observer.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchall()
            if len(waits) >= count:
                return {pid for (pid,) in waits}
            assert time.monotonic() < deadline, "no check waited for the lock"
            time.sleep(0.02)

    with other_session() as admin, other_session() as observer:
        admin.execute("BEGIN")
        admin.execute(
            f"LOCK TABLE oauth2_provider_accesstoken, {GENERATION_TABLE} IN ACCESS EXCLUSIVE MODE"
        )
        # The lease's next renewal waits to read the generation: nothing is trusted until then
        # (nothing has changed meanwhile) and from then on every check asks.
        assert lock_waits(observer, 1) == {lease.backend_pid}
        answer = {}
        waiting = threading.Thread(target=lambda: answer.update(r=mcp_post(url, token, ECHO)))
        waiting.start()
        try:
            # The gateway's own sessions, its checks' and its lease's, not a pooled one.
            assert lock_waits(observer, 2) == {pid, lease.backend_pid}
            assert httpx.get(f"{_live_app.url}/healthz", timeout=5).status_code == 200
            assert not answer, "the request was answered under the lock"
        finally:
            admin.execute("COMMIT")
        waiting.join(10)
    assert answer["r"].status_code == 200
