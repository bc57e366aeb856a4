"""A routine QuickBooks tools/call: two reads (the bearer check and the connection), no write,
no module searched for."""

import sys
import time

import pytest

from events.models import Event
from tests.support.quickbooks import call
from tests.support.sql import all_sql, postgres_only, writes

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for_first_call_trace() -> None:
    """The first call of a token is traced just after its response went out: wait for it."""
    deadline = time.monotonic() + 10
    while not Event.objects.filter(kind="mcp.first_call").exists():
        assert time.monotonic() < deadline, "the first call was not traced"
        time.sleep(0.05)


def test_a_routine_tools_call_runs_two_statements_and_writes_nothing(qbo_connector):
    first = call(qbo_connector, "company_info")
    assert first["isError"] is False, first
    _wait_for_first_call_trace()

    with all_sql() as statements:
        result = call(qbo_connector, "company_info")
    assert result["isError"] is False, result
    assert writes(statements) == []
    # The upstream connection's read and the bearer check's (on PostgreSQL under the lease
    # none: gateway.bearer).
    assert 1 <= len(statements) <= 2, statements


class _ImportSearches:
    """First on sys.meta_path, it sees every import Python has to search for: a module not
    imported yet, or one whose import failed before (failures are not cached)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name, path=None, target=None):
        self.names.append(name)
        return None  # the real finders go on as usual


def test_a_routine_tools_call_searches_for_no_module(qbo_connector):
    """httpcore imports sniffio whenever it sets up a lock or a cancel shield, four times per
    upstream request: without sniffio installed, each failed import searched every sys.path
    entry again (about 0.15 ms each)."""
    assert call(qbo_connector, "company_info")["isError"] is False  # lazy imports happen once
    _wait_for_first_call_trace()

    searches = _ImportSearches()
    sys.meta_path.insert(0, searches)
    try:
        result = call(qbo_connector, "company_info")
    finally:
        sys.meta_path.remove(searches)
    assert result["isError"] is False, result
    assert searches.names == []


def test_last_used_is_written_at_most_once_a_minute(qbo_connector):
    from upstream import clock
    from upstream.models import UpstreamConnection

    connection = qbo_connector["connection"]
    assert call(qbo_connector, "company_info")["isError"] is False
    used = UpstreamConnection.objects.get(pk=connection.pk).last_used_at
    assert used is not None
    _wait_for_first_call_trace()

    assert call(qbo_connector, "company_info")["isError"] is False
    assert UpstreamConnection.objects.get(pk=connection.pk).last_used_at == used

    clock.advance(61)
    with all_sql() as statements:
        assert call(qbo_connector, "company_info")["isError"] is False
    assert [s.split()[0] for s in writes(statements)] == ["UPDATE"]
    assert UpstreamConnection.objects.get(pk=connection.pk).last_used_at > used


def test_a_refresh_runs_three_statements(qbo_connector):
    """Claim the lease and read the row in one UPDATE ... RETURNING, store Intuit's answer,
    record the event: nothing read twice, and the fresh row is returned without reading it
    back."""
    from config import crypto
    from tests.support.quickbooks import advance
    from upstream.models import UpstreamConnection
    from upstream.refresh import upstream_connection_refresh

    advance(qbo_connector, 3600 + 60)  # the access token has expired
    with all_sql() as statements:
        fresh = upstream_connection_refresh(connection_id=qbo_connector["connection"].pk)
    verbs = [s.split()[0].upper() for s in statements]
    assert verbs == ["UPDATE", "UPDATE", "INSERT"], statements
    assert "RETURNING" in statements[0].upper(), statements[0]
    stored = UpstreamConnection.objects.get(pk=fresh.pk)
    assert crypto.decrypt(fresh.access_token_encrypted) == crypto.decrypt(
        stored.access_token_encrypted
    )
    assert (fresh.access_expires_at, fresh.status, fresh.lease_owner) == (
        stored.access_expires_at,
        stored.status,
        "",
    )


@postgres_only("prepared statements are PostgreSQL's")
def test_a_refresh_prepares_its_statements_on_postgresql(qbo_connector):
    """On PostgreSQL's pooled connections the refresh's three statements are prepared: parsed
    and planned once per connection, their values sent apart (Django's own cursors quote the
    values into the text and have every statement parsed and planned again)."""
    from django.db import connection, transaction

    from tests.support.quickbooks import advance
    from upstream.refresh import upstream_connection_refresh

    advance(qbo_connector, 3600 + 60)
    # Inside a transaction the refresh keeps its connection throughout (it gives it back to
    # the pool during the provider call otherwise): the session to look at is this one.
    with transaction.atomic():
        upstream_connection_refresh(connection_id=qbo_connector["connection"].pk)
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [row[0] for row in cursor.fetchall()]
    rows = [s for s in prepared if s.startswith('UPDATE "upstream_upstreamconnection"')]
    assert any("RETURNING" in s for s in rows), prepared  # the claim
    assert any('"last_refresh_at" = $' in s and "RETURNING" not in s for s in rows), prepared
    assert any(s.startswith('INSERT INTO "events_event"') for s in prepared), prepared


def test_the_sweep_claims_due_connections_in_one_statement(qbo_connector):
    """UPDATE ... WHERE id IN (the due rows, skipping those another sweep holds) RETURNING:
    no SELECT of the ids first and no second pass to mark them."""
    from tests.support.quickbooks import advance
    from upstream.refresh import upstream_connections_claim_due

    advance(qbo_connector, 36 * 3600)  # not refreshed for a day and a half: due
    with all_sql() as statements:
        claimed = upstream_connections_claim_due()
    assert claimed == [qbo_connector["connection"].pk]
    assert [s.split()[0].upper() for s in statements] == ["UPDATE"], statements
    assert "RETURNING" in statements[0].upper(), statements[0]
    assert upstream_connections_claim_due() == []  # queued: not claimed again meanwhile


def test_a_routine_tools_call_compiles_no_query(qbo_connector, monkeypatch):
    """Both reads are statements built once per process: the ORM compiling the connection's
    read (``filter(...).first()``) at every call was 18 % of the web process's busy samples in
    a QuickBooks tools/call (py-spy, bench/quickbooks_calls.py)."""
    from django.db.models.sql.compiler import SQLCompiler

    assert call(qbo_connector, "company_info")["isError"] is False
    _wait_for_first_call_trace()
    compiled = []
    as_sql = SQLCompiler.as_sql

    def counting(self, *args, **kwargs):
        compiled.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    result = call(qbo_connector, "company_info")
    monkeypatch.undo()
    assert result["isError"] is False, result
    assert compiled == []
