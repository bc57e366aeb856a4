"""The tool-call audit log: records are built on the request path, kept in memory and written
in batches (``AuditBuffer``), then optionally streamed to an operator's webhook.

A tools/call never waits on an insert: the gateway adds the record to this process's buffer
after the response went out, and its flush loop writes the buffer every
``AUDIT_FLUSH_SECONDS`` or as soon as ``AUDIT_BATCH_SIZE`` records are waiting, and once more
at shutdown. A hard crash (SIGKILL, power loss) loses the records still in the buffer: at most
``AUDIT_FLUSH_SECONDS`` worth of calls, or ``AUDIT_BATCH_SIZE`` records.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import hmac
import inspect
import io
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, models, transaction

from config.db import db_insert_head, server_bound_cursor
from events.models import AuditRecord
from tenants.models import Connector

log = logging.getLogger(__name__)

_SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey", "authorization", "cookie")
REDACTED = "[redacted]"


def _redacted(value: Any) -> Any:
    """``value`` with every field whose name suggests a secret replaced (recursively)."""
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED
            if any(word in str(k).lower() for word in _SECRET_WORDS)
            else _redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def audit_arguments(
    arguments: Any, *, read_only: bool, mode: str
) -> tuple[str, dict[str, Any] | Any]:
    """("full" or "digest", what to keep) for one call's arguments under the connector's mode.

    A digest keeps the argument names and a SHA-256 of the values: identical calls can be
    matched, their values cannot be read."""
    full = mode == Connector.AuditArguments.FULL or (
        mode == Connector.AuditArguments.WRITES and not read_only
    )
    if full:
        return "full", _redacted(arguments)
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    keys = sorted(str(k) for k in arguments) if isinstance(arguments, Mapping) else []
    return "digest", {"keys": keys, "sha256": hashlib.sha256(canonical.encode()).hexdigest()}


def audit_record_new(
    *,
    created: datetime,
    tenant_id: int,
    connector_id: int,
    user_id: int | None,
    username: str,
    client_id: str,
    tool: str,
    outcome: str,
    latency_ms: int,
    upstream_request_id: str,
    arguments_kept: str,
    arguments: Any,
    error: str,
) -> tuple:
    """A new record: its values in the order the flush writes them (``AuditRecord``'s fields
    but the id). The buffer keeps this plain tuple, not a model instance: a record waits there
    until the next flush, a flush held up while calls keep coming keeps every record of that
    time, and the allocator keeps their memory once they are written. bench/audit_buffer.py:
    638 bytes a record (its time and arguments digest included) against 910 as an instance,
    0.4-0.5 us of a tools/call against 5.2-6.0 for the instance made by position.
    ``audit_records_written`` makes instances of written records for what reads them."""
    return (
        created,
        tenant_id,
        connector_id,
        user_id,
        username,
        client_id,
        tool,
        outcome,
        latency_ms,
        upstream_request_id,
        arguments_kept,
        arguments,
        error,
    )


# A record's values stand in the order of the model's fields: the flush's INSERT and COPY
# (and audit_records_written, the id first) take them by position.
FIELD_NAMES = tuple(f.attname for f in AuditRecord._meta.concrete_fields)
if FIELD_NAMES != (AuditRecord._meta.pk.attname, *inspect.signature(audit_record_new).parameters):
    raise AssertionError("AuditRecord's fields changed: update events.audit.audit_record_new")


def audit_records_written(rows: list[tuple]) -> list[AuditRecord]:
    """Written records (``AuditBuffer.flush``'s answer: each record's id, then its values) as
    the saved model instances that the webhook and OpenTelemetry read: made only for them."""
    return [AuditRecord.from_db(DEFAULT_DB_ALIAS, FIELD_NAMES, row) for row in rows]


class AuditBuffer:
    """This process's audit records not yet written (``audit_record_new``'s tuples), oldest
    first (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: deque[tuple] = deque()
        self.dropped = 0  # records given up because the database stayed unreachable

    def add(self, record: tuple) -> bool:
        """Keep ``record``; True when a batch is full and the flush loop should run now."""
        with self._lock:
            self._records.append(record)
            return len(self._records) >= settings.AUDIT_BATCH_SIZE

    def pending(self) -> int:
        with self._lock:
            return len(self._records)

    def drain(self) -> list[tuple]:
        """Take every waiting record without writing it."""
        with self._lock:
            records, self._records = list(self._records), deque()
        return records

    def flush(self) -> list[tuple]:
        """Write every waiting record in batches; returns those written, in order, each as its
        new id followed by its values (``audit_records_written`` makes instances of them).

        When the database refuses, the records go back to the front of the buffer for the next
        flush, up to ``AUDIT_BUFFER_MAX``; past that the oldest are dropped and counted."""
        records = self.drain()
        written: list[tuple] = []
        size = settings.AUDIT_BATCH_SIZE
        for start in range(0, len(records), size):
            batch = records[start : start + size]
            try:
                ids = audit_insert(batch)
            except Exception:
                log.exception("could not write audit records; keeping them for the next flush")
                self._requeue(records[start:])
                break
            written.extend((pk, *record) for pk, record in zip(ids, batch, strict=True))
        return written

    def _requeue(self, records: list[tuple]) -> None:
        with self._lock:
            self._records.extendleft(reversed(records))
            over = len(self._records) - settings.AUDIT_BUFFER_MAX
            for _ in range(max(0, over)):
                self._records.popleft()
            if over > 0:
                self.dropped += over
                log.error("audit buffer full: dropped %d oldest records", over)


audit_buffer = AuditBuffer()


@dataclass(frozen=True)
class _Insert:
    fields: tuple[models.Field, ...]
    adapters: tuple  # per field: how its value goes to the driver, or None: as it is
    head: str  # INSERT INTO ... (columns)

    def values(self, records: list[tuple]) -> Iterator[list]:
        """Each record's values as the driver takes them."""
        adapted = [(i, adapt) for i, adapt in enumerate(self.adapters) if adapt is not None]
        for record in records:
            row = list(record)
            for i, adapt in adapted:
                row[i] = adapt(row[i])
            yield row


@functools.cache
def _insert_of(vendor: str) -> _Insert:
    """The audit table's INSERT and its values' adapters, built once per process.

    ``bulk_create`` compiles its statement and runs every field's ``get_db_prep_save`` for
    every record: about 45 us of CPU per record, a tenth of a tools/call's, spent in the flush
    thread while requests wait for the interpreter. The values the gateway puts in a record
    are already what the driver takes (``str``, ``int``, ``None``) but the creation time and
    the JSON arguments, which go through the backend's own adapters, as Django sends them
    (tests/events/test_audit_log.py compares every column with what ``bulk_create`` stores)."""
    ops = connection.ops
    fields, head, _ = db_insert_head(AuditRecord, connection)
    adapters = []
    for field in fields:
        if isinstance(field, models.DateTimeField):
            adapters.append(ops.adapt_datetimefield_value)
        elif isinstance(field, models.JSONField):
            adapters.append(functools.partial(_json_adapted, ops, field.encoder))
        elif isinstance(field, (models.CharField, models.IntegerField, models.ForeignKey)):
            adapters.append(None)
        else:  # a field added later: adapted as Django adapts it
            adapters.append(functools.partial(field.get_db_prep_save, connection=connection))
    return _Insert(fields=tuple(fields), adapters=tuple(adapters), head=head)


def _json_adapted(ops, encoder, value):
    return ops.adapt_json_value(value, encoder)


@functools.cache
def _statement() -> str:
    """The INSERT of one record, which the flush runs for many at once (not PostgreSQL:
    ``_copy_of``)."""
    insert = _insert_of(connection.vendor)
    return f"{insert.head} VALUES ({', '.join(['%s'] * len(insert.fields))})"


@dataclass(frozen=True)
class _Copy:
    ids: str  # the next ids of the table's sequence: SELECT nextval(...) FROM generate_series
    copy: str  # COPY table (pk, columns) FROM STDIN (FORMAT BINARY)
    types: tuple[str, ...]  # each column's type, the primary key's first: binary COPY casts none


@functools.cache
def _copy_of(vendor: str) -> _Copy:
    """PostgreSQL's COPY of audit records, built once per process.

    An ``INSERT ... SELECT * FROM UNNEST(arrays)`` cost this process 10-12 us of CPU per record,
    most of it psycopg dumping every array element in Python; a binary COPY formats each row in
    psycopg's C code: 4-5 us, the server's work the same (bench/gateway_calls.py: one audit
    record per tools/call). COPY cannot return the ids, so they are taken from the table's
    sequence first, as the INSERT would take them."""
    q = connection.ops.quote_name
    pk = AuditRecord._meta.pk
    table = q(AuditRecord._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, pk.column])
        (sequence,) = cursor.fetchone()
    fields = (pk, *_insert_of(vendor).fields)
    sequence = sequence.replace("'", "''")
    return _Copy(
        ids=f"SELECT nextval('{sequence}'::regclass) FROM generate_series(1, %s)",
        copy=f"COPY {table} ({', '.join(q(f.column) for f in fields)}) FROM STDIN (FORMAT BINARY)",
        types=tuple(f.db_type(connection).split("(")[0] for f in fields),
    )


# The flush thread holds the interpreter while it builds records' values, so requests wait
# meanwhile. It writes STATEMENT_ROWS records at a time and sleeps STATEMENT_PAUSE between two
# groups: letting go of the interpreter only while SQLite runs a statement did not hand it over,
# as the thread took it back before the event loop's thread, woken on the same core, ran (a
# waiting thread asks for it only after the 5 ms switch interval). On SQLite a group is one
# ``executemany`` of the one-record INSERT: one statement text, compiled once per connection
# whatever a flush's length (a multi-row INSERT's text changed with its number of rows, and the
# connection kept each one it ran), at about the CPU per record of 50-record INSERTs. With
# the writer thread at a lower priority (config.db.db_writer_executor) a request that arrives
# mid-flush waits for one small group, not a 50-record INSERT (0.6-0.9 ms at one connection:
# the p99; bench/RESULTS.md, seventh round).
STATEMENT_ROWS = 10
STATEMENT_PAUSE = 50e-6  # seconds
COPY_ROWS = 50  # PostgreSQL: records COPY formats between two looks at the event loop


def audit_insert(records: list[tuple]) -> list:
    """Write ``records`` (``audit_record_new``'s) in one transaction; their ids, in order."""
    insert = _insert_of(connection.vendor)
    with transaction.atomic(savepoint=False), server_bound_cursor() as cursor:
        if connection.vendor == "postgresql":
            return _copy_records(cursor, _copy_of("postgresql"), records, insert.values)
        for start in range(0, len(records), STATEMENT_ROWS):
            if start:
                time.sleep(STATEMENT_PAUSE)  # the event loop's turn
            rows = list(insert.values(records[start : start + STATEMENT_ROWS]))
            cursor.executemany(_statement(), rows)
        # One transaction holds the database's only write lock: its rows took the next ids in
        # turn (SQLite's AUTOINCREMENT, as any rowid table's), the last one the newest.
        cursor.execute("SELECT last_insert_rowid()")
        (last,) = cursor.fetchone()
    return list(range(last - len(records) + 1, last + 1))


def _copy_records(cursor, copy: _Copy, records: list[tuple], values) -> list[int]:
    """COPY ``records`` (their ids first taken from the sequence) through ``cursor``, Django's
    wrapper of a psycopg cursor: through its execute wrappers and query log, as an execute."""
    cursor.execute(copy.ids, [len(records)])
    ids = [pk for (pk,) in cursor.fetchall()]

    def run(sql, params, many, context):
        with context["connection"].wrap_database_errors, cursor.cursor.copy(sql) as writer:
            writer.set_types(copy.types)
            for start in range(0, len(records), COPY_ROWS):
                batch = records[start : start + COPY_ROWS]
                for pk, row in zip(ids[start : start + COPY_ROWS], values(batch), strict=True):
                    row.insert(0, pk)
                    writer.write_row(row)
                time.sleep(0)  # let a request waiting for the interpreter have it

    logged = cursor.debug_sql(copy.copy) if hasattr(cursor, "debug_sql") else nullcontext()
    with logged:
        cursor._execute_with_wrappers(copy.copy, None, False, run)
    return ids


def audit_record_data(record: AuditRecord) -> dict[str, Any]:
    """One record as the API, the JSON lines export and the webhook show it."""
    created: datetime = record.created
    return {
        "id": record.pk,
        "time": created.isoformat(),
        "tenant_id": record.tenant_id,
        "connector_id": record.connector_id,
        "user_id": record.user_id,
        "member": record.username,
        "client_id": record.client_id,
        "tool": record.tool,
        "outcome": record.outcome,
        "latency_ms": record.latency_ms,
        "upstream_request_id": record.upstream_request_id,
        "arguments_kept": record.arguments_kept,
        "arguments": record.arguments,
        "error": record.error,
    }


def _webhook_host(url: str) -> str:
    """What a log line may say about the webhook: its host, never a path or query with keys."""
    return urlsplit(url).hostname or "?"


async def audit_webhook_send(records: list[AuditRecord], http: httpx.AsyncClient) -> bool:
    """POST ``records`` as JSON lines to ``AUDIT_WEBHOOK_URL`` (when set); True if accepted.

    Signed with HMAC-SHA256 of the body under ``AUDIT_WEBHOOK_SECRET`` in
    ``X-Audit-Signature: sha256=<hex>``. One attempt per batch with a short timeout: the
    records are in the database already, so a receiver that was down can page through the API.
    """
    url = settings.AUDIT_WEBHOOK_URL
    if not url or not records:
        return False
    body = "".join(json.dumps(audit_record_data(r)) + "\n" for r in records).encode()
    headers = {"content-type": "application/x-ndjson"}
    if settings.AUDIT_WEBHOOK_SECRET:
        digest = hmac.new(settings.AUDIT_WEBHOOK_SECRET.encode(), body, hashlib.sha256)
        headers["x-audit-signature"] = "sha256=" + digest.hexdigest()
    try:
        response = await http.post(
            url, content=body, headers=headers, timeout=settings.AUDIT_WEBHOOK_TIMEOUT
        )
    except httpx.HTTPError as exc:
        log.warning("audit webhook at %s failed: %s", _webhook_host(url), type(exc).__name__)
        return False
    if response.status_code >= 300:
        log.warning("audit webhook at %s answered %d", _webhook_host(url), response.status_code)
        return False
    return True


_otel_logger = None
_otel_lock = threading.Lock()


def audit_otel_logger():
    """The OpenTelemetry logger audit records stream to when ``AUDIT_OTLP_LOGS`` is on (built
    once per process, exporting over OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``), else None."""
    global _otel_logger
    if not settings.AUDIT_OTLP_LOGS:
        return None
    with _otel_lock:
        if _otel_logger is None:
            import os

            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
            from opentelemetry.sdk.resources import Resource

            named = (
                {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "mcp-platform-web"}
            )
            provider = LoggerProvider(resource=Resource.create(named))
            provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
            _otel_logger = provider.get_logger("mcp.audit")
        return _otel_logger


def audit_otel_emit(records: list[AuditRecord], logger) -> None:
    """Hand ``records`` to the OpenTelemetry log pipeline, one log record each (event
    ``mcp.tool_call``; the body has the fields of the JSON lines export). It queues them: the
    exporter sends in the background, and a collector that is down costs only a log line."""
    from opentelemetry._logs import SeverityNumber

    for record in records:
        data = audit_record_data(record)
        failed = record.outcome != AuditRecord.Outcome.OK
        logger.emit(
            timestamp=int(record.created.timestamp() * 1e9),
            severity_number=SeverityNumber.WARN if failed else SeverityNumber.INFO,
            severity_text="WARN" if failed else "INFO",
            event_name="mcp.tool_call",
            body={k: v for k, v in data.items() if v is not None and k != "arguments"}
            | {"arguments": json.dumps(data["arguments"], sort_keys=True)},
            attributes={
                "mcp.tenant_id": record.tenant_id,
                "mcp.connector_id": record.connector_id,
                "mcp.tool": record.tool,
                "mcp.outcome": record.outcome,
                "mcp.member": record.username,
                "mcp.client_id": record.client_id,
            },
        )


EXPORT_FIELDS = (
    "id",
    "time",
    "tenant_id",
    "connector_id",
    "user_id",
    "member",
    "client_id",
    "tool",
    "outcome",
    "latency_ms",
    "upstream_request_id",
    "arguments_kept",
    "arguments",
    "error",
)
EXPORT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


def audit_export_lines(records, export_type: str) -> Iterator[str]:
    """``records`` as CSV (arguments as a JSON cell) or JSON lines, one string per line.

    Reads the query in chunks, so an export of a long period does not load it into memory."""
    if export_type not in EXPORT_TYPES:
        raise ValueError(f"export type must be one of {', '.join(EXPORT_TYPES)}")
    if export_type == "jsonl":
        for record in records.iterator(chunk_size=1000):
            yield json.dumps(audit_record_data(record)) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(EXPORT_FIELDS)
    for record in records.iterator(chunk_size=1000):
        data = audit_record_data(record)
        data["arguments"] = json.dumps(data["arguments"], sort_keys=True)
        yield line(["" if data[f] is None else data[f] for f in EXPORT_FIELDS])
