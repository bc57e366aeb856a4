"""Database work outside Django's request cycle (the MCP gateway, its tools, the call counter).

Django hands a request's connection back when the request finishes (``request_finished``).
MCP requests never pass through it, and their ORM work runs in the event loop's worker
threads, so each unit of work does the same itself: its connection goes back to the pool (or
is closed, without one) when it ends, instead of staying checked out by an idle thread.

SQLite has no pool and opening a connection costs more than a query (Django registers its SQL
functions and runs the PRAGMAs on every connect): there each of the event loop's few worker
threads (at most ``min(32, cores + 4)``) keeps its connection, and closes it only when it is
broken or left inside a transaction. A kept connection holds no lock between units of work, and
sees every commit at its next statement.

What the web process gathers in memory and writes in the background (the audit buffer, the call
counts) goes through one thread of its own (``db_writer_executor``), not the shared ones.
"""

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connection, connections
from django.db.models.sql.query import Query

P = ParamSpec("P")
R = TypeVar("R")


def _release() -> None:
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        if connection.errors_occurred and not connection.is_usable():
            connection.close()
        return
    close_old_connections()


def db_connection_release() -> None:
    """Hand this thread's pooled connection back before a slow wait that needs no database (a
    provider's answer), so a worker's threads share a few connections instead of each holding
    one across its HTTP call. Only with a pool (without one the next statement would open a new
    connection) and never inside a transaction (closing would end it)."""
    if connection.settings_dict.get("OPTIONS", {}).get("pool") and not connection.in_atomic_block:
        connection.close()


def db_sync_to_async(
    func: Callable[P, R], *, executor: Executor | None = None
) -> Callable[P, Awaitable[R]]:
    """``sync_to_async(func, thread_sensitive=False)`` that releases its connection after; in
    ``executor``'s threads, or the event loop's shared worker threads."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        finally:
            _release()

    return sync_to_async(run, thread_sensitive=False, executor=executor)


@functools.cache
def db_writer_executor() -> ThreadPoolExecutor:
    """The one thread in which the web process writes what it gathers in memory: the audit
    buffer (every few seconds under load, the process's heaviest database work) and the call
    counts.

    In the shared worker threads each thread in turn ran the flushes, and on SQLite each
    thread's connection kept its own page cache of the audit table's newest pages and its own
    compiled INSERTs (about 0.55 MB a thread, four threads under load), and the malloc arenas
    they share kept growing with them for minutes (bench/web_memory.py). In one thread they
    fill one connection's, once. The flushes also never wait behind a slow unit of work (an
    inline upstream refresh) in the shared threads.

    On SQLite, where a flush's work is this process's own, the thread runs at a lower priority
    (``WRITER_NICE``), so that Linux hands the core to the event loop's thread when a request
    wakes it during a flush instead of letting the writer finish its time slice (1.4 ms here):
    at one connection the p99 of tools/call went from 1.59-1.98 to 1.16-1.43 ms, for 2-5 % fewer
    calls per CPU-second at 16 and 64 connections (bench/RESULTS.md, seventh round). Under full
    load it still gets about a tenth of the core, several times what the flushes take. On
    PostgreSQL, whose server does most of a flush's work, it made no difference to the p99 and
    cost the same 3 %.
    """
    return ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="db-writer", initializer=_writer_priority
    )


WRITER_NICE = 10  # nice levels below the process's own


def _writer_priority() -> None:
    """(In the writer thread, first; SQLite.) Lower this thread's priority, not the process's:
    on Linux a thread's id names it alone to setpriority (elsewhere it would name a process)."""
    if sys.platform.startswith("linux") and connection.vendor == "sqlite":
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WRITER_NICE)


@functools.cache
def _server_bound_cursor_class(prepare: bool | None):
    import psycopg

    class ServerBoundCursor(psycopg.Cursor):
        """Binds on the server; ``prepare`` as psycopg's: True prepares what it runs, False
        never, None after the connection's ``prepare_threshold`` runs."""

        def execute(self, query, params=None, *, prepare=prepare, binary=None):
            return super().execute(query, params, prepare=prepare, binary=binary)

    return ServerBoundCursor


def server_bound_cursor(*, prepare: bool = False):
    """A cursor of this thread's connection that sends its parameters apart from the SQL.

    Django's PostgreSQL cursors bind on the client: every value is quoted into the statement's
    text, which for a statement with many values (the audit flush's arrays) costs more CPU than
    anything else in it, and is never planned once for all. On PostgreSQL this is psycopg's
    own cursor (``prepare``: prepared on the connection after its first run, worth it on a
    pooled, long-lived connection), wrapped as Django wraps its cursors (query logging, the
    execute wrappers tests count statements with); elsewhere Django's cursor."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    if connection.queries_logged:
        # A prepared statement is sent by name: Django would log its text as None. Where
        # queries are logged (DEBUG, tests capturing them), it is sent whole, never prepared.
        raw = _server_bound_cursor_class(False)(connection.connection)
        return connection.make_debug_cursor(raw)
    raw = _server_bound_cursor_class(prepare or None)(connection.connection)
    return connection.make_cursor(raw)


def db_prepared_cursor():
    """A cursor for a fixed statement run again and again (the bearer check, the refresh's
    three): on PostgreSQL with the pool, prepared on the pooled, long-lived connection, so
    PostgreSQL stops parsing and planning it each time. Without the pool (DB_POOL_SIZE=0, e.g.
    behind PgBouncer) a connection serves one unit of work: nothing to prepare for."""
    return server_bound_cursor(
        prepare=connection.vendor == "postgresql" and connection.pool is not None
    )


def db_converters(columns: list, *, using: str = DEFAULT_DB_ALIAS) -> dict:
    """What Django does to each of ``columns`` (``field.get_col(alias)``) of a raw row before
    a model sees it (e.g. SQLite's text to a datetime, JSON text to a dict), as its own reads
    do: ``{index: (converters, column)}`` for the columns that have any. Work it out once per
    process and statement; ``db_row`` applies it."""
    conn = connections[using]
    return conn.ops.compiler("SQLCompiler")(Query(None), conn, using).get_converters(columns)


def db_row(row, converters: dict, conn) -> list:
    """``row`` as Django would read it, by ``db_converters``' answer."""
    values = list(row)
    for index, (functions, column) in converters.items():
        value = values[index]
        for convert in functions:
            value = convert(value, column, conn)
        values[index] = value
    return values


def db_insert_head(model, conn) -> tuple[list, str, str]:
    """The fields, ``INSERT INTO table (columns)`` and `` RETURNING pk`` of a statement that
    inserts every column of ``model`` but its primary key: for inserts built once per process
    instead of through the ORM each time."""
    quote = conn.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(f.column) for f in fields)
    return (
        fields,
        f"INSERT INTO {quote(model._meta.db_table)} ({columns})",
        f" RETURNING {quote(model._meta.pk.column)}",
    )


def db_mark_saved(instance, pk, *, using: str) -> None:
    """Make ``instance`` what ``save()`` would have left after inserting it as ``pk``."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = using
