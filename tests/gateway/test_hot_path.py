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


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="statements are prepared on PostgreSQL"
)
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
