"""Reads about upstream connections for the dashboard, the API, readiness and consent."""

import functools
from datetime import datetime

from django.db import connection, connections
from django.db.models import Count

from config.db import db_converters, db_prepared_cursor, db_row
from connectors.base import get_kind
from events.models import Event
from tenants.selectors import connector_holds_upstream
from upstream.models import UpstreamConnection

# A connection in these states serves no call until someone connects the account again.
UNUSABLE = (UpstreamConnection.Status.NEEDS_REAUTH, UpstreamConnection.Status.REVOKED)

# Every column of a connection, in the order a read of its whole row takes them (here and the
# refresh's claim, upstream.refresh), and the model's names for them (``from_db``).
CONNECTION_FIELDS = tuple(UpstreamConnection._meta.concrete_fields)
CONNECTION_ATTNAMES = [f.attname for f in CONNECTION_FIELDS]


def upstream_connection_of(*, connector_id: int, user_id: int | None) -> UpstreamConnection | None:
    """The connection a tool call of ``connector_id`` uses: ``user_id``'s own, or with None the
    connector's shared one (each at most one row: the model's unique constraints).

    Every upstream tool call reads it, so the statement is built once per process (prepared on
    PostgreSQL's pooled connections), not compiled by the ORM each time: the ORM's
    ``filter(...).first()`` was 18 % of the web process's busy samples in a QuickBooks
    tools/call, most of it compiling the query (py-spy, bench/quickbooks_calls.py)."""
    params = [connector_id] if user_id is None else [connector_id, user_id]
    with db_prepared_cursor() as cursor:
        cursor.execute(_connection_sql(connection.vendor, user_id is None), params)
        row = cursor.fetchone()
    if row is None:
        return None
    alias = connection.alias
    return UpstreamConnection.from_db(
        alias, CONNECTION_ATTNAMES, db_row(row, _converters(alias), connection)
    )


@functools.cache
def _connection_sql(vendor: str, shared: bool) -> str:
    quote = connections[UpstreamConnection.objects.db].ops.quote_name
    columns = ", ".join(quote(f.column) for f in CONNECTION_FIELDS)
    user = "IS NULL" if shared else "= %s"
    return (
        f"SELECT {columns} FROM {quote(UpstreamConnection._meta.db_table)} "
        f"WHERE {quote('connector_id')} = %s AND {quote('user_id')} {user}"
    )


@functools.cache
def _converters(alias: str) -> dict:
    table = UpstreamConnection._meta.db_table
    return db_converters([f.get_col(table) for f in CONNECTION_FIELDS], using=alias)


def upstream_status_counts(*, connector_ids: list[int] | None = None) -> dict[str, int]:
    """How many connections are in each status (every status present, zero included)."""
    rows = UpstreamConnection.objects.all()
    if connector_ids is not None:
        rows = rows.filter(connector_id__in=connector_ids)
    counts = dict.fromkeys(UpstreamConnection.Status.values, 0)
    for row in rows.values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def upstream_last_sweep() -> datetime | None:
    """When the background sweep last ran (its heartbeat event)."""
    return Event.objects.filter(kind="upstream.sweep").values_list("created", flat=True).first()


def shared_upstream_problem(*, connector) -> str:
    """Why no member can use ``connector`` now, which only a tenant admin can fix: its kind
    holds one shared upstream connection (shared mode) and the tenant's is missing or lost.
    Empty when it is usable, and in per-user mode (each member connects their own in the hop).
    """
    if connector.mode != connector.Mode.SHARED or not connector_holds_upstream(connector):
        return ""
    status = (
        UpstreamConnection.objects.filter(connector=connector, user__isnull=True)
        .values_list("status", flat=True)
        .first()
    )
    if status is not None and status not in UNUSABLE:
        return ""
    what = "has not been connected yet" if status is None else "needs to be reconnected"
    return (
        f"{connector.tenant.name}'s {get_kind(connector.kind).title} account {what}. "
        "A tenant admin connects it once from the dashboard; then connect your client again."
    )
