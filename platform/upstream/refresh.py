"""The refresh engine: keeps upstream access tokens fresh, one refresh per connection at a time.

A refresh claims the connection's lease with a conditional UPDATE (so two workers or tool calls
never refresh one connection at once, on PostgreSQL and SQLite alike), calls the provider
outside any transaction, and commits the provider's answer in one UPDATE before anything else
happens. A caller that finds the lease held waits for the holder's result instead of refreshing
again. The sweep claims due connections for the Celery tasks (upstream.tasks).
"""

import contextlib
import functools
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q

from config import crypto
from config.db import db_connection_release, db_converters, db_prepared_cursor, db_row
from connectors.base import UpstreamReauthRequired, UpstreamUnavailable
from events.metrics import metrics_refresh
from events.models import Event
from events.services import event_record
from tenants.models import Connector
from upstream import clock
from upstream.models import UpstreamConnection
from upstream.selectors import CONNECTION_ATTNAMES, CONNECTION_FIELDS
from upstream.services import provider_for, token_fields, upstream_connection_reauth_needed

log = logging.getLogger(__name__)
Status = UpstreamConnection.Status


@dataclass(frozen=True)
class AccessGrant:
    """A usable upstream access token and what it belongs to."""

    connection_id: int
    access_token: str
    external_account_id: str
    external_account_name: str = ""


def upstream_connection_fresh(connection: UpstreamConnection, now) -> bool:
    """No refresh needed: the access token outlives the margin and the last refresh is recent
    enough to keep the provider's rolling refresh-token window moving."""
    margin = timedelta(seconds=settings.UPSTREAM_REFRESH_MARGIN)
    max_age = timedelta(seconds=settings.UPSTREAM_MAX_REFRESH_AGE)
    return connection.access_expires_at > now + margin and (
        connection.last_refresh_at is not None and connection.last_refresh_at > now - max_age
    )


def _claim_lease(
    connection_id: int, owner: str, now, *, force: bool, first_seen=None
) -> UpstreamConnection | None:
    """Take the refresh lease and read the row in one statement (UPDATE ... RETURNING, on
    PostgreSQL and SQLite alike): only if nobody holds a live lease, the grant is alive, the
    tokens need a refresh (unless forced) and, once we have waited for another holder, nobody
    refreshed since we looked (``first_seen``). The row comes back as the UPDATE left it, under
    its row lock, so the refresh token it holds is the newest committed one. Returns None when
    the lease was not taken; the connector comes back with the row (kind, settings, tenant),
    the rest of it is loaded only if something asks."""
    conn = connections[UpstreamConnection.objects.db]
    adapt = conn.ops.adapt_datetimefield_value
    params = [
        owner,
        adapt(now + timedelta(seconds=settings.UPSTREAM_LEASE_SECONDS)),
        Status.REFRESHING,
        connection_id,
        adapt(now),
        Status.NEEDS_REAUTH,
        Status.REVOKED,
    ]
    if not force:  # not fresh: the access token is inside the margin or the last refresh is old
        params += [
            adapt(now + timedelta(seconds=settings.UPSTREAM_REFRESH_MARGIN)),
            adapt(now - timedelta(seconds=settings.UPSTREAM_MAX_REFRESH_AGE)),
        ]
    if first_seen is not None:
        params.append(adapt(first_seen))
    with db_prepared_cursor() as cursor:
        cursor.execute(_claim_sql(conn.vendor, force, first_seen is not None), params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = db_row(row, _claim_converters(conn.alias), conn)
    fields = len(CONNECTION_FIELDS)
    connection = UpstreamConnection.from_db(conn.alias, CONNECTION_ATTNAMES, values[:fields])
    connection.connector = Connector.from_db(
        conn.alias, ["id", *_CONNECTOR_FIELDS], [connection.connector_id, *values[fields:]]
    )
    return connection


# What a refresh reads of the row (all of it: upstream.selectors.CONNECTION_FIELDS) and of its
# connector (the provider's settings, the event's tenant).
_CONNECTOR_FIELDS = ("tenant_id", "kind", "settings")


@functools.cache
def _claim_sql(vendor: str, force: bool, waited: bool) -> str:
    """The claim's statement, built once per process and shape from the models' names, so a
    refresh neither builds it nor (on PostgreSQL, prepared) has it parsed and planned again."""
    quote = connections[UpstreamConnection.objects.db].ops.quote_name
    table, connector_table = UpstreamConnection._meta.db_table, Connector._meta.db_table
    conditions = [
        f"{quote('id')} = %s",
        f"({quote('lease_until')} IS NULL OR {quote('lease_until')} < %s)",
        f"{quote('status')} NOT IN (%s, %s)",
    ]
    if not force:
        conditions.append(
            f"({quote('access_expires_at')} <= %s OR {quote('last_refresh_at')} IS NULL"
            f" OR {quote('last_refresh_at')} <= %s)"
        )
    if waited:
        conditions.append(f"{quote('access_expires_at')} = %s")
    columns = ", ".join(quote(f.column) for f in CONNECTION_FIELDS)
    of_connector = f"{quote(table)}.{quote('connector_id')}"
    connector_columns = ", ".join(
        f"(SELECT c.{quote(Connector._meta.get_field(name).column)} FROM"
        f" {quote(connector_table)} c WHERE c.{quote('id')} = {of_connector})"
        for name in _CONNECTOR_FIELDS
    )
    return (
        f"UPDATE {quote(table)} SET {quote('lease_owner')} = %s, {quote('lease_until')} = %s, "
        f"{quote('status')} = %s WHERE {' AND '.join(conditions)} "
        f"RETURNING {columns}, {connector_columns}"
    )


@functools.cache
def _claim_converters(alias: str) -> dict:
    """What Django does to each returned column before a model sees it (its converters, e.g.
    SQLite's text to datetime, JSON text to a dict), worked out once per process."""
    connector_table = Connector._meta.db_table
    return db_converters(
        [f.get_col(UpstreamConnection._meta.db_table) for f in CONNECTION_FIELDS]
        + [Connector._meta.get_field(name).get_col(connector_table) for name in _CONNECTOR_FIELDS],
        using=alias,
    )


def _finish(connection_id: int, owner: str, **fields) -> dict | None:
    """Write the outcome and free the lease, only if we still hold it; returns what was
    written (None when the lease was lost)."""
    fields = {"lease_owner": "", "lease_until": None, "refresh_queued_until": None, **fields}
    conn = connections[UpstreamConnection.objects.db]
    sql, model_fields = _finish_sql(conn.vendor, tuple(fields))
    params = [f.get_db_prep_save(fields[f.name], conn) for f in model_fields]
    with db_prepared_cursor() as cursor:
        cursor.execute(sql, [*params, connection_id, owner])
        stored = cursor.rowcount
    return fields if stored == 1 else None


@functools.cache
def _finish_sql(vendor: str, names: tuple[str, ...]) -> tuple[str, list]:
    """The store's conditional UPDATE for these columns, built once per process (what
    ``filter(pk=..., lease_owner=...).update(...)`` would send, without building it each time).
    """
    quote = connections[UpstreamConnection.objects.db].ops.quote_name
    model_fields = [UpstreamConnection._meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in model_fields)
    sql = (
        f"UPDATE {quote(UpstreamConnection._meta.db_table)} SET {assignments} "
        f"WHERE {quote('id')} = %s AND {quote('lease_owner')} = %s"
    )
    return sql, model_fields


def upstream_connection_refresh(*, connection_id: int, force: bool = False) -> UpstreamConnection:
    """Refresh the connection's tokens unless they are still fresh; returns the fresh row.

    Raises UpstreamReauthRequired when the grant is dead (the connection is then
    needs_reauth), UpstreamUnavailable on a transient failure (the connection keeps its
    tokens and goes to error, to be retried), and waits for a refresh another process holds.
    A refresh is three statements: claim the lease and read the row (one UPDATE ... RETURNING),
    store the answer, record the event.
    """
    deadline = time.monotonic() + settings.UPSTREAM_LEASE_SECONDS + 5
    first_seen = None
    while True:
        owner = uuid.uuid4().hex
        connection = _claim_lease(
            connection_id, owner, clock.now(), force=force, first_seen=first_seen
        )
        if connection is not None:
            break
        # Not claimed: the row says why (dead grant, still fresh, or someone holds the lease).
        connection = UpstreamConnection.objects.select_related("connector").get(pk=connection_id)
        if connection.status in (Status.NEEDS_REAUTH, Status.REVOKED):
            raise UpstreamReauthRequired(f"connection is {connection.status}")
        first_seen = first_seen or connection.access_expires_at
        if not connection.lease_owner and (
            (not force and upstream_connection_fresh(connection, clock.now()))
            # Someone else refreshed while we waited: their tokens are the ones to use.
            or connection.access_expires_at != first_seen
        ):
            return connection
        if time.monotonic() > deadline:
            raise UpstreamUnavailable("another refresh of this connection did not finish")
        time.sleep(0.05)

    # The provider may take seconds: the database connection goes back to the pool meanwhile.
    db_connection_release()
    provider = provider_for(connection)
    started = time.monotonic()
    try:
        tokens = provider.refresh(crypto.decrypt(connection.refresh_token_encrypted))
    except UpstreamReauthRequired as exc:
        _finish(connection_id, owner, status=Status.NEEDS_REAUTH, last_error=str(exc)[:500])
        _record_refresh(connection, Event.Outcome.ERROR, started, str(exc), reauth=True)
        upstream_connection_reauth_needed(connection_id=connection_id)
        raise
    except UpstreamUnavailable as exc:
        _finish(
            connection_id,
            owner,
            status=Status.ERROR,
            last_error=str(exc)[:500],
            failure_count=connection.failure_count + 1,
        )
        _record_refresh(connection, Event.Outcome.ERROR, started, str(exc))
        raise
    except BaseException:
        # Anything else (a bug, a kill): keep the tokens, give the lease back.
        _finish(connection_id, owner, status=Status.ERROR, last_error="refresh failed unexpectedly")
        raise
    now = clock.now()
    stored = _finish(
        connection_id,
        owner,
        status=Status.ACTIVE,
        last_refresh_at=now,
        last_error="",
        failure_count=0,
        **token_fields(tokens, now),
    )
    _record_refresh(connection, Event.Outcome.OK, started, "")
    if stored is None:
        # Our lease expired while the provider answered and another refresh took over; the
        # tokens it stores supersede ours. Rare, and logged, since a rotated value may be lost.
        log.warning(
            "refresh answer arrived after the lease expired", extra={"connection_id": connection_id}
        )
        return UpstreamConnection.objects.select_related("connector").get(pk=connection_id)
    for name, value in stored.items():  # the row as we just wrote it, without reading it back
        setattr(connection, name, value)
    return connection


def _record_refresh(connection, outcome, started, error: str, reauth: bool = False) -> None:
    metrics_refresh(provider=connection.provider, outcome="reauth" if reauth else outcome)
    event_record(
        kind="upstream.reauth_needed" if reauth else "upstream.refresh",
        outcome=outcome,
        connector=connection.connector,
        user_id=connection.user_id,
        duration_ms=int((time.monotonic() - started) * 1000),
        detail={"connection_id": connection.pk, "error": error[:300]},
    )


# last_used_at only steers the sweep (used this week or not): a minute's resolution is plenty,
# and it keeps a write off nearly every tool call (as API keys do).
LAST_USED_RESOLUTION = timedelta(seconds=60)


def upstream_connection_touch(connection: UpstreamConnection) -> None:
    """Record that the connection was used, at most once a minute (a conditional UPDATE)."""
    now = clock.now()
    if connection.last_used_at is not None and now - connection.last_used_at < LAST_USED_RESOLUTION:
        return
    UpstreamConnection.objects.filter(pk=connection.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)


def upstream_access(*, connection: UpstreamConnection, force_refresh: bool = False) -> AccessGrant:
    """A usable access token for ``connection`` (a row just read), refreshing under the lease
    when it is about to expire or when forced; no query at all when it is fresh."""
    if (
        force_refresh
        or connection.lease_owner
        or not upstream_connection_fresh(connection, clock.now())
    ):
        connection = upstream_connection_refresh(connection_id=connection.pk, force=force_refresh)
    upstream_connection_touch(connection)
    return AccessGrant(
        connection_id=connection.pk,
        access_token=crypto.decrypt(connection.access_token_encrypted),
        external_account_id=connection.external_account_id,
        external_account_name=connection.external_account_name,
    )


def upstream_connections_claim_due(*, batch: int | None = None) -> list[int]:
    """Claim connections the sweep should refresh now; each is enqueued once per claim.

    Due: recently used and the access token expires within the refresh margin (tool calls
    never wait on a refresh), or not refreshed for UPSTREAM_MAX_REFRESH_AGE whatever its use,
    or stuck in a refresh whose holder died. On PostgreSQL concurrent sweeps skip each other's
    rows (FOR UPDATE SKIP LOCKED); everywhere, the queued-until column is the claim.
    """
    from django.db import connection as db

    now = clock.now()
    margin = now + timedelta(seconds=settings.UPSTREAM_REFRESH_MARGIN)
    free = Q(refresh_queued_until__isnull=True) | Q(refresh_queued_until__lt=now)
    due = (
        Q(status__in=[Status.ACTIVE, Status.ERROR])
        & (
            Q(
                access_expires_at__lte=margin,
                last_used_at__gte=now - timedelta(seconds=settings.UPSTREAM_RECENT_USE_SECONDS),
            )
            | Q(last_refresh_at__lte=now - timedelta(seconds=settings.UPSTREAM_MAX_REFRESH_AGE))
            | Q(last_refresh_at__isnull=True)
        )
    ) | Q(status=Status.REFRESHING, lease_until__lt=now)
    locking = db.vendor == "postgresql"
    candidates = UpstreamConnection.objects.filter(due & free).order_by("access_expires_at")
    if locking:
        candidates = candidates.select_for_update(skip_locked=True)
    quote = db.ops.quote_name
    until = now + timedelta(seconds=settings.UPSTREAM_LEASE_SECONDS * 5)
    # One statement claims and answers: UPDATE ... WHERE id IN (the due rows, most urgent
    # first, skipping rows another sweep holds) RETURNING, instead of a SELECT and an UPDATE
    # that found the same rows again by id.
    # Django compiles FOR UPDATE only inside a transaction; elsewhere the one statement is
    # atomic by itself (SQLite would open an IMMEDIATE transaction around it for nothing).
    with transaction.atomic() if locking else contextlib.nullcontext():
        select, params = candidates.values("pk")[
            : batch or settings.UPSTREAM_SWEEP_BATCH
        ].query.sql_with_params()
        with db.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(UpstreamConnection._meta.db_table)}"
                f" SET {quote('refresh_queued_until')} = %s WHERE {quote('id')} IN ({select})"
                f" RETURNING {quote('id')}, {quote('access_expires_at')}",
                [db.ops.adapt_datetimefield_value(until), *params],
            )
            claimed = cursor.fetchall()
    # RETURNING comes in no particular order: the most urgent are published first.
    return [pk for pk, _ in sorted(claimed, key=lambda row: row[1])]


def upstream_connections_in_use(*, provider: str) -> list[int]:
    """Connections to ``provider`` that count as usable (active, refreshing, or retrying)."""
    return list(
        UpstreamConnection.objects.filter(
            provider=provider, status__in=[Status.ACTIVE, Status.REFRESHING, Status.ERROR]
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
