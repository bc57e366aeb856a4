"""Recording connector events.

Connect steps and failures are written at once; routine successful MCP calls are counted in
memory and written as one aggregate row per connector and minute (``CallCounter``), so the
hot path never waits on an insert.
"""

import functools
import logging
import threading
import time
from collections import defaultdict

from django.db import connection, transaction

from config.db import db_insert_head, db_mark_saved, db_prepared_cursor, db_sync_to_async
from config.faults import unavailable
from config.limits import limit_hit
from config.proxy import client_address
from events.models import Event

log = logging.getLogger(__name__)

_SENSITIVE = {"access_token", "refresh_token", "code", "code_verifier", "client_secret", "token"}


def _clean(detail: dict) -> dict:
    return {k: ("[redacted]" if k in _SENSITIVE else v) for k, v in detail.items()}


# Requests nobody authenticated (discovery, refused MCP calls, /token from an unknown client)
# are traced at most this many times per connector and address per window; past that they are
# only counted, so a flood cannot fill a tenant's trace.
ANONYMOUS_EVENT_LIMIT = 10
ANONYMOUS_EVENT_WINDOW = 600  # seconds


def _anonymous_event_allowed(connector_id: int | None, ip: str | None) -> bool:
    name = f"anon-events:{connector_id or '-'}:{ip or '-'}"
    return not limit_hit(name, limit=ANONYMOUS_EVENT_LIMIT, window=ANONYMOUS_EVENT_WINDOW)


def event_record(
    *,
    kind: str,
    outcome: str = Event.Outcome.OK,
    tenant_id: int | None = None,
    connector=None,
    connector_id: int | None = None,
    user_id: int | None = None,
    client_id: str = "",
    status_code: int | None = None,
    duration_ms: int | None = None,
    ip: str | None = None,
    user_agent: str = "",
    detail: dict | None = None,
    anonymous: bool = False,
) -> Event | None:
    """Write one event. Never raises: losing a trace row must not fail the request it describes.

    ``anonymous``: nobody authenticated the request, so it is capped per connector and address.
    """
    try:
        if connector is not None and tenant_id is None:
            tenant_id = connector.tenant_id
        if anonymous and not _anonymous_event_allowed(
            connector.pk if connector is not None else connector_id, ip
        ):
            return None
        return _event_insert(
            Event(
                kind=kind,
                outcome=outcome,
                tenant_id=tenant_id,
                connector_id=connector.pk if connector is not None else connector_id,
                user_id=user_id,
                client_id=(client_id or "")[:255],
                status_code=status_code,
                duration_ms=duration_ms,
                ip=ip,
                user_agent=(user_agent or "")[:300],
                detail=_clean(detail or {}),
            )
        )
    except Exception:
        log.exception("could not record event", extra={"event_kind": kind})
        return None


def _event_insert(event: Event) -> Event:
    """``event.save()``'s INSERT from a statement built once per process (prepared on
    PostgreSQL's pooled connections): a background refresh writes one event per refresh, and
    building the INSERT through the ORM cost more CPU than sending it. The same values as
    ``save()`` (each field's ``pre_save``, e.g. ``created``, and its database form); Event has
    no signal receivers."""
    sql, fields = _event_insert_sql(connection.vendor)
    params = [f.get_db_prep_save(f.pre_save(event, True), connection) for f in fields]
    with transaction.mark_for_rollback_on_error(), db_prepared_cursor() as cursor:
        cursor.execute(sql, params)
        if connection.features.can_return_columns_from_insert:
            pk = cursor.fetchone()[0]
        else:
            pk = connection.ops.last_insert_id(cursor, Event._meta.db_table, Event._meta.pk.column)
    db_mark_saved(event, pk, using=connection.alias)
    return event


@functools.cache
def _event_insert_sql(vendor: str) -> tuple[str, list]:
    fields, head, returning = db_insert_head(Event, connection)
    sql = f"{head} VALUES ({', '.join(['%s'] * len(fields))})"
    if connection.features.can_return_columns_from_insert:
        sql += returning
    return sql, fields


def event_record_for_request(request, **fields) -> Event | None:
    """``event_record`` with the address and user agent of a Django request."""
    return event_record(
        ip=client_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        **fields,
    )


aevent_record = db_sync_to_async(event_record)


class CallCounter:
    """Counts routine successful MCP calls per (connector, client, method/tool) in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, int, str], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self._window_started = time.monotonic()

    def add(self, *, tenant_id: int, connector_id: int, client_id: str, name: str) -> None:
        with self._lock:
            self._counts[(tenant_id, connector_id, client_id)][name] += 1

    def pending(self) -> int:
        """Calls counted and not yet written."""
        with self._lock:
            return sum(sum(by_name.values()) for by_name in self._counts.values())

    def drain(self) -> dict[tuple[int, int, str], dict[str, int]]:
        with self._lock:
            counts, self._counts = self._counts, defaultdict(lambda: defaultdict(int))
            self._window_started = time.monotonic()
        return counts

    def flush(self) -> int:
        """Write one ``mcp.calls`` event per connector and client; returns rows written."""
        counts = self.drain()
        rows = [
            Event(
                kind="mcp.calls",
                tenant_id=tenant_id,
                connector_id=connector_id,
                client_id=client_id[:255],
                detail={"count": sum(by_name.values()), "by_name": dict(by_name)},
            )
            for (tenant_id, connector_id, client_id), by_name in counts.items()
        ]
        if rows:
            try:
                Event.objects.bulk_create(rows)
            except Exception as exc:
                if unavailable(exc) is None:
                    log.exception("could not write call counts")
                    return 0
                # The database is down: the counts wait in memory for the next flush.
                log.warning("could not write call counts; keeping them for the next flush")
                self._restore(counts)
                return 0
        return len(rows)

    def _restore(self, counts: dict[tuple[int, int, str], dict[str, int]]) -> None:
        with self._lock:
            for key, by_name in counts.items():
                for name, count in by_name.items():
                    self._counts[key][name] += count


call_counter = CallCounter()
