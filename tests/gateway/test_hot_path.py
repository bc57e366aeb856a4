"""The MCP hot path: one database round trip to authorize, no event insert per routine call."""

import asyncio
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events.models import Event
from events.services import call_counter
from gateway.bearer import bearer_check
from tests.support.flow import OAuthClient, mcp_post
from tests.support.oauth import Browser
from tests.support.sql import postgres_only

pytestmark = pytest.mark.django_db(transaction=True)


def test_authorizing_a_request_is_one_query(live_url, acme):
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)["access_token"]
    with CaptureQueriesContext(connection) as queries:
        check = bearer_check("acme", "echo", token)
    assert len(queries.captured_queries) == 1
    assert check.member_role == "member" and check.username == "bob"
    assert check.token_connector_id == acme["connector"].pk
    with CaptureQueriesContext(connection) as queries:
        assert bearer_check("acme", "echo", "not-a-token").token_id is None
    assert len(queries.captured_queries) == 1


@postgres_only("statements are prepared on PostgreSQL")
def test_the_bearer_check_is_prepared_on_the_pooled_connection(live_url, acme):
    """PostgreSQL plans the seven-table join once per pooled connection, not per request; the
    plan is all that is kept: a revoked token is refused at once (test_revocation_*)."""
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)["access_token"]
    for _ in range(3):
        assert bearer_check("acme", "echo", token).member_role == "member"
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('"oauth2_provider_accesstoken" tok' in statement for statement in prepared)
    assert bearer_check("acme", "echo", "not-a-token").token_id is None


@pytest.mark.skipif(connection.vendor != "sqlite", reason="checks run in the loop on SQLite only")
def test_on_sqlite_the_gateway_checks_in_the_loop_and_a_revocation_bites_at_once(live_url, acme):
    """The loop's own connection gives the same answer as Django's, without a worker thread,
    and keeps nothing between checks."""
    import anyio
    import anyio.to_thread

    from gateway.bearer import BearerChecks
    from tests.support.flow import stored_access_token

    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)["access_token"]
    expected = [
        bearer_check("acme", "echo", token),
        bearer_check("acme", "echo", "not-a-token"),
        bearer_check("acme", "echo", None),
    ]
    stored = stored_access_token(token)
    checks = BearerChecks()

    async def no_thread(*args):
        raise AssertionError("the check went to a worker thread")

    checks._in_thread = no_thread

    async def run():
        try:
            answers = [
                await checks("acme", "echo", token),
                await checks("acme", "echo", "not-a-token"),
                await checks("acme", "echo", None),
                await checks("acme", "no-such-connector", token),
            ]
            await anyio.to_thread.run_sync(stored.delete)  # revoked, from another connection
            return answers, await checks("acme", "echo", token)
        finally:
            checks.close()

    answers, after = anyio.run(run)
    assert answers == [*expected, None]
    assert answers[0].member_role == "member" and answers[0].token_expires is not None
    assert after.token_id is None and after.connector_id == answers[0].connector_id


@pytest.mark.skipif(connection.vendor != "sqlite", reason="checks run in the loop on SQLite only")
def test_on_a_locked_sqlite_database_the_check_waits_in_a_worker_thread(acme):
    """The loop never waits for a lock: when its connection finds the database locked, the
    check goes to a worker thread, which waits for it (as every other database read does),
    and the loop's connection is made again for the next check."""
    import sqlite3

    import anyio

    from gateway.bearer import BearerChecks

    class Locked:
        closed = False

        def execute(self, *args):
            raise sqlite3.OperationalError("database is locked")

        def close(self):
            self.closed = True

    checks = BearerChecks()
    locked = checks._sqlite = Locked()
    sent = []

    async def in_thread(*args):
        sent.append(args)
        return "from the thread"

    checks._in_thread = in_thread

    async def run():
        try:
            return await checks("acme", "echo", "a-token"), await checks("acme", "echo", None)
        finally:
            checks.close()

    first, second = anyio.run(run)
    assert first == "from the thread" and sent == [("acme", "echo", "a-token")]
    assert locked.closed and second.token_id is None  # a new connection, in the loop


def test_routine_calls_are_counted_not_written_one_by_one(live_url, acme):
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)["access_token"]
    url = acme["connector"].url
    echo = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}},
    }
    assert mcp_post(url, token, echo).status_code == 200  # the first call: traced in full
    # That trace row is written just after the response went out: wait for it.
    deadline = time.monotonic() + 10
    while not Event.objects.filter(kind="mcp.first_call").exists():
        assert time.monotonic() < deadline, "the first call was not traced"
        time.sleep(0.05)
    rows = Event.objects.count()
    for _ in range(5):
        assert mcp_post(url, token, echo).status_code == 200
    # A call is counted just after its response went out: wait for the fifth count.
    deadline = time.monotonic() + 10
    while call_counter.pending() < 5:
        assert time.monotonic() < deadline, "the calls were not counted"
        time.sleep(0.01)
    assert Event.objects.count() == rows  # nothing written per routine call
    assert call_counter.flush() == 1
    aggregate = Event.objects.get(kind="mcp.calls")
    assert aggregate.detail == {"count": 5, "by_name": {"tools/call:echo": 5}}
    assert aggregate.connector_id == acme["connector"].pk


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL connections are pooled")
def test_gateway_threads_keep_their_sqlite_connection():
    """Connecting costs more than the bearer check's query: each worker thread keeps one."""
    from concurrent.futures import ThreadPoolExecutor

    from config.db import db_sync_to_async

    @db_sync_to_async
    def connection_in_use():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return connection.connection  # held, so a new one cannot take its id

    async def twice():
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
        return await connection_in_use(), await connection_in_use()

    first, second = asyncio.run(twice())
    assert first is second


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's page cache")
def test_every_sqlite_connection_of_the_gateway_has_a_small_page_cache():
    """A web process keeps a SQLite connection per worker thread and one in the event loop:
    each page cache is bounded at 512 KiB (SQLite's default, 2 MB each, filled up as the audit
    table grew: the process's memory grew with it, bench/web_memory.py)."""
    from gateway.bearer import BearerChecks

    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA cache_size").fetchone() == (-512,)
    checks = BearerChecks()
    try:
        assert checks._loop_connection().execute("PRAGMA cache_size").fetchone() == (-512,)
    finally:
        checks.close()
