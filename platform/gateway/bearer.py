"""The bearer check of an MCP request: one database round trip for token, connector and member.

One parameterised SQL statement (LEFT JOINs from the connector to the token, its audience, its
client, its user and the membership), built once per process from the models' table and column
names; each request only runs it with its own three parameters (prepared, on PostgreSQL's
pooled connections and on the gateway's own connection, gateway.loop_statement). Building the
same lookup with the ORM (nine subqueries) cost more CPU than the rest of the gateway together.

A revocation, a disconnect, a removed member or a disabled connector bites on the very next
request, in every process. On SQLite every request reads the token, its audience, the user,
the membership and the connector anew. On PostgreSQL the gateway's own connection keeps the
answers it read with the bearer checks' generation read in the same statement (a row that
every transaction changing an answer changes, by triggers: gateway/migrations/0001), and while
that generation has not moved a request only reads it: one row of one table instead of the
seven-table join, whose set-up was most of PostgreSQL's cost per call (bench/RESULTS.md).

While it holds the lease, a request for a kept answer makes no round trip at all. The lease
is an advisory lock the process holds in shared mode on a connection of its own, let go of and
taken anew every ``LEASE_RENEW_SECONDS``, with the generation read after taking it; the
generation's trigger takes the same lock in exclusive mode before the change commits
(gateway/migrations/0002). So a change commits only while no process trusts what it kept, and
a process trusts again only once it read the generation after the change: a kept answer whose
generation is the lease's is the answer the check would read now. That round trip was half of
PostgreSQL's CPU per call at one connection and most of its p99 over the bare server's
(bench/RESULTS.md, ninth round). The price: a change waits until every web process let go
(up to ``LEASE_RENEW_SECONDS``); a process that ran nothing on its lease's session through the
migration's ``HOLDERS_WAIT`` has that session ended, and the change then waits out
``LEASE_SECONDS``, the longest any lease of it is trusted.
"""

import asyncio
import dataclasses
import functools
import hashlib
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection
from oauth2_provider.models import AccessToken, Application

from authserver.models import TokenAudience
from config.db import db_converters, db_prepared_cursor, db_row, db_sync_to_async
from tenants.models import Connector, Membership, Tenant


@dataclass(frozen=True)
class BearerCheck:
    """What the gateway needs to decide on a request, read in one query."""

    connector_id: int
    connector_kind: str
    connector_enabled: bool
    connector_mode: str
    connector_settings: dict
    tool_policy: dict
    connector_audit_arguments: str
    tenant_id: int
    tenant_enabled: bool
    token_id: int | None
    token_expires: datetime | None
    token_connector_id: int | None  # the connector the token was issued for
    token_scope: str | None
    token_user_id: int | None
    token_client_id: str | None
    user_active: bool | None
    username: str | None
    member_role: str | None


# (BearerCheck field, table alias, field name); the aliases are joined in _sql().
_COLUMNS = (
    ("connector_id", "c", "id"),
    ("connector_kind", "c", "kind"),
    ("connector_enabled", "c", "enabled"),
    ("connector_mode", "c", "mode"),
    ("connector_settings", "c", "settings"),
    ("tool_policy", "c", "tool_policy"),
    ("connector_audit_arguments", "c", "audit_arguments"),
    ("tenant_id", "c", "tenant"),
    ("tenant_enabled", "t", "enabled"),
    ("token_id", "tok", "id"),
    ("token_expires", "tok", "expires"),
    ("token_connector_id", "aud", "connector"),
    ("token_scope", "tok", "scope"),
    ("token_user_id", "tok", "user"),
    ("token_client_id", "app", "client_id"),
    ("user_active", "u", "is_active"),
    ("username", "u", "username"),
    ("member_role", "m", "role"),
)


# A row's values construct a BearerCheck by position.
if [f.name for f in dataclasses.fields(BearerCheck)] != [name for name, _, _ in _COLUMNS]:
    raise AssertionError("BearerCheck's fields and _COLUMNS are not in the same order")


def _models() -> dict:
    return {
        "c": Connector,
        "t": Tenant,
        "tok": AccessToken,
        "aud": TokenAudience,
        "app": Application,
        "u": get_user_model(),
        "m": Membership,
    }


@dataclass(frozen=True)
class _Compiled:
    sql: str
    converters: dict  # config.db.db_converters of its columns


@functools.cache
def _compiled(vendor: str) -> _Compiled:
    """The statement and its columns' converters (JSON, datetimes, booleans as Django reads
    them), for this process's database backend."""
    models = _models()
    q = connection.ops.quote_name

    def col(alias: str, name: str) -> str:
        return f"{alias}.{q(models[alias]._meta.get_field(name).column)}"

    def table(alias: str) -> str:
        return f"{q(models[alias]._meta.db_table)} {alias}"

    sql = (
        f"SELECT {', '.join(col(alias, name) for _, alias, name in _COLUMNS)} "
        f"FROM {table('c')} "
        f"INNER JOIN {table('t')} ON {col('t', 'id')} = {col('c', 'tenant')} "
        f"LEFT OUTER JOIN {table('tok')} ON {col('tok', 'token_checksum')} = %s "
        f"LEFT OUTER JOIN {table('aud')} ON {col('aud', 'access_token')} = {col('tok', 'id')} "
        f"LEFT OUTER JOIN {table('app')} ON {col('app', 'id')} = {col('tok', 'application')} "
        f"LEFT OUTER JOIN {table('u')} ON {col('u', 'id')} = {col('tok', 'user')} "
        f"LEFT OUTER JOIN {table('m')} ON {col('m', 'tenant')} = {col('c', 'tenant')} "
        f"AND {col('m', 'user')} = {col('tok', 'user')} "
        f"WHERE {col('t', 'slug')} = %s AND {col('c', 'slug')} = %s"
    )
    converters = db_converters(
        [models[alias]._meta.get_field(name).get_col(alias) for _, alias, name in _COLUMNS]
    )
    return _Compiled(sql=sql, converters=converters)


def bearer_check(tenant_slug: str, connector_slug: str, token: str | None) -> BearerCheck | None:
    """Look up the connector and, when given, the token and its user's membership.

    Returns None when the connector does not exist. The token checksum, the tenant slug and the
    connector slug are unique, and so are a token's audience and a user's membership of a
    tenant: the joins give at most one row.
    """
    compiled = _compiled(connection.vendor)
    with db_prepared_cursor() as cursor:
        cursor.execute(compiled.sql, _params(tenant_slug, connector_slug, token))
        row = cursor.fetchone()
    return _check_of(compiled, row)


def _params(tenant_slug: str, connector_slug: str, token: str | None) -> list[str]:
    checksum = hashlib.sha256(token.encode()).hexdigest() if token else ""
    return [checksum, tenant_slug, connector_slug]


# The generation's table and statement (gateway/migrations/0001_bearer_generation.py).
GENERATION_TABLE = "gateway_bearer_generation"
_GENERATION = f'SELECT generation FROM "{GENERATION_TABLE}"'
_CHECK_NAME = b"gateway_bearer_check"
_GENERATION_NAME = b"gateway_bearer_generation"
KEPT_MAX = 1024  # answers the gateway's own PostgreSQL connection keeps (oldest go first)

# The lease (gateway/migrations/0002_bearer_lease.py): the advisory lock a process holds in
# shared mode while it trusts its kept answers, let go of and taken anew every
# LEASE_RENEW_SECONDS (every LEASE_BUSY_RENEW_SECONDS after a renewal found the generation moved:
# changes come in runs, and each waits for a renewal); trusted at most LEASE_SECONDS after it
# was asked for (shorter than the migration's HOLDERS_WAIT, no longer than its LEASE_SECONDS),
# and let go of after LEASE_IDLE_SECONDS without a check.
LEASE_LOCK = 1835233383
LEASE_RENEW_SECONDS = 0.05
LEASE_BUSY_RENEW_SECONDS = 0.005
LEASE_SECONDS = 0.5
LEASE_IDLE_SECONDS = 5.0
# The lease's clock: on Linux it goes on while the machine sleeps, as the writer's wait does.
_now = functools.partial(time.clock_gettime, getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))
_UNLOCK_NAME = b"gateway_bearer_unlock"
_LOCK_NAME = b"gateway_bearer_lock"


def _check_of(compiled: _Compiled, row) -> BearerCheck | None:
    if row is None:
        return None
    check = BearerCheck(*db_row(row, compiled.converters, connection))
    if check.tool_policy is None:
        return dataclasses.replace(check, tool_policy={})
    return check


class BearerChecks:
    """The gateway's bearer checks (awaitable), sent from the event loop's thread where that is
    safe. Handing each check to a worker thread and back cost as much CPU as the check or more
    (bench/gateway_calls.py).

    On SQLite the statement runs right here, on a connection of the loop's own: a read of a few
    pages by unique indexes, which in WAL mode never waits for a writer. The connection waits
    for nothing: should the database be locked after all (a recovery), the check goes to a
    worker thread like any other database work.

    On PostgreSQL (with the pool) the loop sends the statement on a connection of its own,
    outside the pool, and awaits the answer as any other I/O (gateway.loop_statement): the loop
    never waits for PostgreSQL, and the check never takes a pooled connection. It keeps up to
    ``KEPT_MAX`` complete answers it read there, each with the generation it was read at, and
    for a token it keeps only asks for the generation (``_loop_postgres_check``), or, under the
    lease (``_hold_lease``, on a second connection of its own), not even that. A lease is
    trusted only while its session is open and has sent nothing unread (a session ended by the
    server lets go of the lock at once: the loop may not have read the goodbye yet). Until that
    connection is open, and whenever it fails (the server ended the session), checks go to a
    worker thread and a pooled connection, which answer them. Without the pool (DB_POOL_SIZE=0,
    e.g. behind PgBouncer in transaction mode, where a session's prepared statements and
    pipeline are not to be relied on) every check goes to a worker thread.
    """

    def __init__(self) -> None:
        self._in_thread = db_sync_to_async(bearer_check)
        self._sqlite = None
        self._postgres = None  # gateway.loop_statement.LoopStatements, on PostgreSQL
        self._where: str | None = None  # _where_checks(), once
        # On PostgreSQL: (checksum, tenant slug, connector slug) -> (session, generation, answer)
        self._kept: dict[tuple[str, ...], tuple[int, int, BearerCheck]] = {}
        self._lease_statements = None  # LoopStatements of the lease's own connection
        self._lease: tuple[int, int, float] | None = None  # (session, generation, until)
        self._checked = False  # a check came since the last renewal
        self._renewing: asyncio.Task | None = None

    async def __call__(
        self, tenant_slug: str, connector_slug: str, token: str | None
    ) -> BearerCheck | None:
        # Asked once: each look at Django's connection from the loop (a context-local lookup)
        # cost 2.5-3 us, and the database's settings do not change while the process runs.
        vendor = self._where if self._where is not None else self._where_checks()
        if vendor == "sqlite":
            compiled = _compiled("sqlite")
            try:
                rows = self._loop_rows(compiled, _params(tenant_slug, connector_slug, token))
            except sqlite3.OperationalError:
                self._close_sqlite()
            else:
                return _check_of(compiled, rows[0] if rows else None)
        elif vendor == "postgresql":
            params = _params(tenant_slug, connector_slug, token)
            check = await self._loop_postgres_check(params)
            if check is not False:
                return check
        return await self._in_thread(tenant_slug, connector_slug, token)

    def _where_checks(self) -> str:
        """Where checks run in the loop: "sqlite", "postgresql" (with the pool) or "" (every
        check in a worker thread)."""
        vendor = connection.vendor
        if vendor == "postgresql" and not connection.settings_dict["OPTIONS"].get("pool"):
            vendor = ""
        self._where = vendor if vendor in ("sqlite", "postgresql") else ""
        return self._where

    def _loop_rows(self, compiled: _Compiled, params: list[str]) -> list:
        """The statement's rows, on the loop's own SQLite connection; all of them, so that the
        statement ends, and with it the read."""
        return self._loop_connection().execute(compiled.sql.replace("%s", "?"), params).fetchall()

    def _loop_connection(self) -> sqlite3.Connection:
        if self._sqlite is None:
            params = connection.get_connection_params()
            self._sqlite = sqlite3.connect(
                params["database"],
                detect_types=params["detect_types"],  # Django's converters, as its own reads
                uri=True,
                timeout=0,  # never wait for a lock: the worker thread waits instead
                isolation_level=None,
            )
            for command in connection.init_commands:  # the PRAGMAs of Django's own connections
                if command := command.strip():
                    self._sqlite.execute(command)
        return self._sqlite

    async def _loop_postgres_check(self, params: list[str]) -> BearerCheck | None | bool:
        """The check, sent from the loop on its own PostgreSQL connection; False when that
        connection cannot answer now.

        An answer kept from this session whose generation is still the current one is the
        answer the check would read now: every commit that changes an answer changes the
        generation, and both were read in one statement (one snapshot). Only complete answers
        are kept (token, audience, user and membership all found: no new row can join them)."""
        statements = self._loop_postgres()
        renewing, loop = self._renewing, asyncio.get_running_loop()
        if renewing is None or renewing.done() or renewing.get_loop() is not loop:
            self._renewing = loop.create_task(self._hold_lease())  # a new loop: starts over
        self._checked = True
        key = tuple(params)
        if (kept := self._kept.get(key)) is not None:
            if (
                (lease := self._lease) is not None
                and lease[1] == kept[1]
                and kept[0] == statements.sessions
                and _now() < lease[2]
                and lease[0] == self._lease_statements.sessions
                and self._lease_statements.quiet()
            ):
                return kept[2]
            rows = await self._loop_postgres_rows(_GENERATION_NAME, ())
            if rows is None:
                return False
            if kept[0] == statements.sessions and rows and rows[0][0] == kept[1]:
                return kept[2]
        rows = await self._loop_postgres_rows(_CHECK_NAME, params)
        if rows is None:
            return False
        if not rows:
            self._kept.pop(key, None)
            return None
        generation, *row = rows[0]
        check = _check_of(_compiled("postgresql"), row)
        if generation is None or None in (
            check.token_id,
            check.token_connector_id,
            check.token_user_id,
            check.member_role,
        ):
            self._kept.pop(key, None)
        else:
            if key not in self._kept and len(self._kept) >= KEPT_MAX:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = (statements.sessions, generation, check)
        return check

    async def _loop_postgres_rows(self, name: bytes, params) -> list | None:
        """The rows of the statement ``name`` (``loop_postgres_statements``), sent from the
        loop on its own PostgreSQL connection; None when that connection cannot run it now."""
        return await self._loop_postgres().rows(name, params)

    def _loop_postgres(self):
        if self._postgres is None:
            from gateway.loop_statement import LoopStatements  # psycopg: never loaded on SQLite

            self._postgres = LoopStatements(loop_postgres_statements(), _loop_postgres_connection)
        return self._postgres

    async def _hold_lease(self) -> None:
        """Hold the lease while checks use it: the lock let go of and taken anew every
        ``LEASE_RENEW_SECONDS`` (sooner while changes come); once ``LEASE_IDLE_SECONDS`` went by
        without a check (or the loop ends), the lease's connection is closed (the next check
        starts over)."""
        from gateway.loop_statement import LoopStatements

        if self._lease_statements is None:
            self._lease_statements = LoopStatements(_lease_statements(), _lease_connection)
        statements = self._lease_statements
        generation = None
        checked = _now()
        try:
            while _now() - checked < LEASE_IDLE_SECONDS:
                previous, generation = generation, await self._renew_lease(statements)
                moved = None not in (previous, generation) and generation != previous
                self._checked = False
                await asyncio.sleep(LEASE_BUSY_RENEW_SECONDS if moved else LEASE_RENEW_SECONDS)
                if self._checked:
                    checked = _now()
        finally:
            if self._renewing is asyncio.current_task():  # else close() did this
                self._lease = None
                self._renewing = None
                statements.close()  # the lock goes with the session

    async def _renew_lease(self, statements) -> int | None:
        """Let go of the lock, take it anew (after any change waiting for it commits) and read
        the generation: trusted from then on, until ``LEASE_SECONDS`` after the lock was asked
        for. Nothing is trusted from the moment the lock may be let go of. The generation read
        (None when the connection could not renew)."""
        self._lease = None
        session = statements.sessions
        asked = _now()
        answers = []
        for name in (_UNLOCK_NAME, _LOCK_NAME, _GENERATION_NAME):
            if (answer := statements.send(name, ())) is None:
                break
            answers.append(answer)
        rows = [await answer for answer in answers]
        if len(rows) == 3 and all(rows) and statements.sessions == session:
            self._lease = (session, rows[2][0][0], asked + LEASE_SECONDS)
            return rows[2][0][0]
        return None

    async def open(self) -> bool:
        """Open the loop's own PostgreSQL connection ahead of the first check (the lifespan
        starts this, without waiting for it); whether it is open (never on SQLite or without
        the pool)."""
        if self._where_checks() == "postgresql":
            return await self._loop_postgres().open()
        return False

    def _close_sqlite(self) -> None:
        if self._sqlite is not None:
            sqlite, self._sqlite = self._sqlite, None
            sqlite.close()

    def close(self) -> None:
        """Close the loop's own connections (from the loop's thread)."""
        self._close_sqlite()
        self._lease = None
        if self._renewing is not None:
            self._renewing.cancel()
            self._renewing = None
        if self._lease_statements is not None:
            self._lease_statements.close()
        if self._postgres is not None:
            self._postgres.close()


@functools.cache
def loop_postgres_statements() -> dict[bytes, str]:
    """The statements prepared on the gateway's own PostgreSQL connection, by name."""
    check = _numbered(_compiled("postgresql").sql)
    return {
        # The generation first, read in the same snapshot as the answer.
        _CHECK_NAME: check.replace("SELECT ", f"SELECT ({_GENERATION}), ", 1),
        _GENERATION_NAME: _GENERATION,
    }


@functools.cache
def _lease_statements() -> dict[bytes, str]:
    """The statements of the lease's own connection (BearerChecks._renew_lease)."""
    return {
        # Functions in FROM: one row of a type the binary loaders know (they return void).
        _UNLOCK_NAME: "SELECT true FROM pg_advisory_unlock_all()",
        _LOCK_NAME: f"SELECT true FROM pg_advisory_lock_shared({LEASE_LOCK})",
        _GENERATION_NAME: _GENERATION,
    }


def _numbered(sql: str) -> str:
    """The statement with PostgreSQL's own placeholders ($1, $2...) for Django's %s."""
    parts = sql.split("%s")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]


def _lease_connection():
    """(In a worker thread.) The lease's connection: waits for the lock as long as it takes
    (a renewal queued behind a writer must not fail on the role's own timeouts)."""
    conn = _loop_postgres_connection()
    try:
        conn.execute("SET lock_timeout = 0")
        conn.execute("SET statement_timeout = 0")
        if conn.info.server_version >= 170000:
            conn.execute("SET transaction_timeout = 0")
    except BaseException:
        conn.close()
        raise
    return conn


def _loop_postgres_connection():
    """(In a worker thread.) A connection as Django opens its own (parameters, adapters, time
    zone and role), but outside the pool, in autocommit, for gateway.loop_statement, which
    reads rows in binary: jsonb comes as its text, as Django's own connections load it (the
    JSONField's converter parses it); the other columns' binary loaders give what Django's
    text loaders give (timestamptz: an aware datetime in the session's time zone, UTC)."""
    import psycopg

    params = connection.get_connection_params()
    params["autocommit"] = True
    params["prepare_threshold"] = None  # the statement is prepared once, by name
    conn = psycopg.connect(**params)
    try:
        connection._configure_connection(conn)
        conn.adapters.register_loader("jsonb", _jsonb_binary_text_loader())
    except BaseException:
        conn.close()
        raise
    return conn


@functools.cache
def _jsonb_binary_text_loader():
    import psycopg
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class JsonbBinaryTextLoader(Loader):
        """jsonb in binary (a version byte, then the JSON text) as text."""

        format = Format.BINARY

        def load(self, data) -> str:
            if data[:1] != b"\x01":
                raise psycopg.DataError("unknown jsonb binary format")
            return str(data[1:], "utf-8")

    return JsonbBinaryTextLoader
