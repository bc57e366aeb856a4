"""Counting SQL statements in every thread (the live server's worker threads included).

Django's CaptureQueriesContext sees one connection, the test thread's; a tool call runs its
queries on the server's threads. This wraps the one method every cursor execute goes through,
and the gateway's bearer check on SQLite and on PostgreSQL, which runs on the event loop's own
connection (gateway.bearer.BearerChecks), outside Django (counted once it answered there: one
it could not answer goes to Django's cursor, which counts it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from django.db import connection
from django.db.backends.utils import CursorWrapper

from gateway.bearer import BearerChecks, loop_postgres_statements

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COPY")  # COPY: the audit flush's


@contextlib.contextmanager
def all_sql() -> Iterator[list[str]]:
    """The SQL statements run in any thread of this process while the block runs."""
    statements: list[str] = []
    lock = threading.Lock()
    original = CursorWrapper._execute_with_wrappers
    original_loop = BearerChecks._loop_rows
    original_loop_postgres = BearerChecks._loop_postgres_rows

    def recording(self, sql, params, many, executor):
        with lock:
            statements.append(str(sql))
        return original(self, sql, params, many, executor)

    def recording_loop(self, compiled, params):
        with lock:
            statements.append(compiled.sql)
        return original_loop(self, compiled, params)

    async def recording_loop_postgres(self, name, params):
        rows = await original_loop_postgres(self, name, params)
        if rows is not None:  # else Django's cursor runs it, and counts it
            with lock:
                statements.append(loop_postgres_statements()[name])
        return rows

    CursorWrapper._execute_with_wrappers = recording
    BearerChecks._loop_rows = recording_loop
    BearerChecks._loop_postgres_rows = recording_loop_postgres
    try:
        yield statements
    finally:
        CursorWrapper._execute_with_wrappers = original
        BearerChecks._loop_rows = original_loop
        BearerChecks._loop_postgres_rows = original_loop_postgres


def writes(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith(WRITES)]


def other_session():
    """A PostgreSQL connection of the test's own, outside Django, in autocommit (as another
    process's would be)."""
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    return psycopg.connect(**params, autocommit=True)


def postgres_only(why: str):
    """Skip, saying how to run it, a test of what only PostgreSQL does."""
    import pytest

    return pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason=f"{why}: set DATABASE_URL to a PostgreSQL database",
    )


@contextlib.asynccontextmanager
async def loop_connection_open(checks: BearerChecks):
    """``checks`` with its own PostgreSQL connection open for the block, closed after."""
    try:
        assert await checks.open(), "the checks' own PostgreSQL connection did not open"
        yield checks
    finally:
        checks.close()
