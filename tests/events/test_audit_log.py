"""The tool-call audit log: one record per tools/call, kept in memory on the hot path and written
in batches (on a full batch, on the timer, at shutdown), then searchable and exportable."""

import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import timedelta

import anyio
import pytest
from django.db import connection
from django.utils import timezone

import events.audit
from authserver.tasks import housekeeping_run
from events.audit import FIELD_NAMES, audit_buffer, audit_record_new, audit_records_written
from events.models import AuditRecord
from tenants.services import connector_update
from tests.support.flow import OAuthClient, mcp_post
from tests.support.live import serve_in_thread
from tests.support.oauth import Browser
from tests.support.sql import all_sql, postgres_only, writes

pytestmark = pytest.mark.django_db(transaction=True)


def _token(live_url, connector, who="bob") -> tuple[str, str]:
    client = OAuthClient.register(live_url)
    browser = Browser(who, f"{who}-pass-123")
    return client.tokens(browser, connector.url)["access_token"], client.client_id


def _call(url, token, tool, arguments, rpc_id=1) -> dict:
    payload = {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    response = mcp_post(url, token, payload)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _wait_pending(count: int) -> None:
    """A record is kept just after its response went out: wait for it."""
    deadline = time.monotonic() + 10
    while audit_buffer.pending() < count:
        assert time.monotonic() < deadline, f"{audit_buffer.pending()} of {count} recorded"
        time.sleep(0.01)


def test_calls_are_kept_in_memory_then_written_in_one_flush(live_url, acme):
    connector = acme["connector"]
    token, client_id = _token(live_url, connector)
    _call(connector.url, token, "echo", {"text": "warm-up"})  # the first call is traced in full
    _wait_pending(1)
    audit_buffer.drain()
    time.sleep(0.3)  # the first call's trace row is written after its response

    with all_sql() as statements:
        assert _call(connector.url, token, "echo", {"text": "secret plans"})["isError"] is False
        _wait_pending(1)
    assert writes(statements) == []  # nothing written on the call's path
    assert _call(connector.url, token, "fail", {"message": "boom", "api_token": "t0k"})["isError"]
    _wait_pending(2)
    assert AuditRecord.objects.count() == 0
    held = audit_buffer.drain()  # each call's values, not a model instance
    assert [type(record) for record in held] == [tuple, tuple]
    assert [dict(zip(FIELD_NAMES[1:], record, strict=True))["tool"] for record in held] == [
        "echo",
        "fail",
    ]
    for record in held:
        audit_buffer.add(record)

    assert len(audit_buffer.flush()) == 2
    assert audit_buffer.pending() == 0
    read, failed = AuditRecord.objects.order_by("id")
    assert (read.tool, read.outcome, read.username, read.client_id) == (
        "echo",
        "ok",
        "bob",
        client_id,
    )
    assert read.tenant_id == acme["tenant"].pk and read.connector_id == connector.pk
    # A read tool keeps a digest: the argument names and a hash, never the text.
    assert read.arguments_kept == "digest"
    canonical = json.dumps({"text": "secret plans"}, sort_keys=True, separators=(",", ":"))
    assert read.arguments == {
        "keys": ["text"],
        "sha256": hashlib.sha256(canonical.encode()).hexdigest(),
    }
    # A tool without readOnlyHint counts as a write: arguments in full, secrets redacted.
    assert failed.arguments_kept == "full"
    assert failed.arguments == {"message": "boom", "api_token": "[redacted]"}
    assert (failed.outcome, failed.error) == ("error", "Error executing tool fail: boom")
    assert read.created <= failed.created <= timezone.now()


def test_the_connector_setting_keeps_every_call_in_full_or_as_digest(live_url, acme):
    connector = acme["connector"]
    token, _ = _token(live_url, connector)
    connector_update(connector=connector, audit_arguments="full")
    _call(connector.url, token, "echo", {"text": "kept"})
    connector_update(connector=connector, audit_arguments="digest")
    _call(connector.url, token, "fail", {"message": "hidden"})
    _wait_pending(2)
    audit_buffer.flush()
    kept, hidden = AuditRecord.objects.order_by("id")
    assert (kept.arguments_kept, kept.arguments) == ("full", {"text": "kept"})
    assert hidden.arguments_kept == "digest" and "hidden" not in json.dumps(hidden.arguments)


def test_a_full_batch_is_written_by_the_server_without_a_call_waiting(live_url, acme, settings):
    settings.AUDIT_BATCH_SIZE = 3
    connector = acme["connector"]
    token, _ = _token(live_url, connector)
    for n in range(3):
        _call(connector.url, token, "echo", {"text": str(n)}, rpc_id=n)
    deadline = time.monotonic() + 10
    while AuditRecord.objects.count() < 3:
        assert time.monotonic() < deadline, "the full batch was not written"
        time.sleep(0.05)
    time.sleep(0.2)
    assert AuditRecord.objects.count() == 3
    assert audit_buffer.pending() == 0


def _fields(acme, **fields) -> dict:
    return {
        "created": timezone.now(),
        "tenant_id": acme["tenant"].pk,
        "connector_id": acme["connector"].pk,
        "user_id": None,
        "username": "bob",
        "client_id": "c1",
        "tool": "echo",
        "outcome": "ok",
        "latency_ms": 3,
        "upstream_request_id": "",
        "arguments_kept": "digest",
        "arguments": {},
        "error": "",
        **fields,
    }


def _record(acme, **fields) -> tuple:
    """A record as the gateway keeps it in the buffer (events.audit.audit_record_new)."""
    return audit_record_new(**_fields(acme, **fields))


def _flushed() -> list[AuditRecord]:
    return audit_records_written(audit_buffer.flush())


def test_the_gateway_flushes_on_its_timer_and_at_shutdown(acme, settings):
    from gateway.asgi import Gateway

    settings.AUDIT_FLUSH_SECONDS = 0.2
    gateway = Gateway()

    async def scenario():
        async with gateway.lifespan():
            audit_buffer.add(_record(acme, tool="on-timer"))
            with anyio.fail_after(5):
                while audit_buffer.pending():
                    await anyio.sleep(0.05)
            audit_buffer.add(_record(acme, tool="at-shutdown"))
        # Leaving the lifespan (the server stopping) writes what is left.

    settings.AUDIT_FLUSH_SECONDS = 0.2
    anyio.run(scenario)
    assert sorted(AuditRecord.objects.values_list("tool", flat=True)) == [
        "at-shutdown",
        "on-timer",
    ]


def test_the_gateway_writes_records_and_call_counts_in_one_thread_of_its_own(
    acme, settings, monkeypatch
):
    """Every flush of the audit buffer and of the call counts runs in the process's one writer
    thread (config.db.db_writer_executor), never in the event loop's shared worker threads: on
    SQLite each of those would keep a page cache of the audit table's newest pages and the
    flush's compiled statements of its own (bench/web_memory.py)."""
    from events.services import call_counter
    from gateway.asgi import Gateway

    threads = []

    def recorded(drain):
        def drain_in_thread():
            threads.append(threading.current_thread())
            return drain()

        return drain_in_thread

    monkeypatch.setattr(audit_buffer, "drain", recorded(audit_buffer.drain))
    monkeypatch.setattr(call_counter, "drain", recorded(call_counter.drain))
    settings.AUDIT_FLUSH_SECONDS = 0.05
    gateway = Gateway()

    async def scenario():
        async with gateway.lifespan():
            with anyio.fail_after(5):
                while len(threads) < 5:
                    await anyio.sleep(0.02)

    anyio.run(scenario)
    assert len(threads) >= 7  # five timed flushes, then both at shutdown
    assert len(set(threads)) == 1
    assert threads[0].name.startswith("db-writer")


def test_the_gateway_makes_model_instances_of_written_records_only_for_a_reader(
    acme, settings, monkeypatch
):
    """A flush's records become AuditRecord instances only when the webhook (or OpenTelemetry)
    reads them (events.audit.audit_records_written), not for every flush."""
    from gateway.asgi import Gateway

    made, sent = [], []
    init = AuditRecord.__init__

    def counted_init(self, *args, **kwargs):
        made.append(args)
        init(self, *args, **kwargs)

    async def webhook(records, http):
        sent.append([(r.pk, r.tool) for r in records])

    monkeypatch.setattr(AuditRecord, "__init__", counted_init)
    monkeypatch.setattr("gateway.asgi.audit_webhook_send", webhook)

    async def served(tool):
        async with Gateway().lifespan():
            audit_buffer.add(_record(acme, tool=tool))
        # Leaving the lifespan (the server stopping) writes it.

    settings.AUDIT_WEBHOOK_URL = ""
    anyio.run(served, "unread")
    assert made == []
    settings.AUDIT_WEBHOOK_URL = "http://127.0.0.1:9/audit"
    anyio.run(served, "sent")
    assert sent == [[(AuditRecord.objects.get(tool="sent").pk, "sent")]]
    assert len(made) == 2  # the one sent, and the one read back just now
    assert AuditRecord.objects.filter(tool="unread").exists()


def test_a_failed_flush_keeps_the_records_for_the_next_one(acme, monkeypatch):
    audit_buffer.drain()
    audit_buffer.add(_record(acme, tool="kept"))

    def refuse(*args, **kwargs):
        raise RuntimeError("database away")

    monkeypatch.setattr(events.audit, "audit_insert", refuse)
    assert audit_buffer.flush() == []
    assert audit_buffer.pending() == 1
    monkeypatch.undo()
    (written,) = _flushed()
    assert written.tool == "kept"
    assert AuditRecord.objects.get().tool == "kept"


def test_a_flush_stores_every_field_and_gives_each_record_its_id(acme):
    audit_buffer.drain()
    arguments = {"query": "select * from Customer", "nested": {"n": [1, 2.5, None, "é"]}}
    created = timezone.now() - timedelta(seconds=3)
    records = [_record(acme, tool=f"t{i}", created=created) for i in range(1, 1200)]
    for record in [_record(acme, tool="t0", created=created, arguments=arguments), *records]:
        audit_buffer.add(record)
    written = _flushed()
    assert len(written) == 1200 and all(r.pk for r in written)
    stored = {r.pk: r for r in AuditRecord.objects.all()}
    assert len(stored) == 1200
    for record in written:
        row = stored[record.pk]
        assert (row.tool, row.created, row.tenant_id, row.outcome) == (
            record.tool,
            created,
            acme["tenant"].pk,
            record.outcome,
        )
    assert stored[written[0].pk].arguments == arguments


def test_flushes_of_every_length_share_one_statement(acme):
    """Each database connection keeps every statement text it ran, compiled: flushes of 1 to
    120 records all run the one-record INSERT (on SQLite, many records at once), or one COPY
    on PostgreSQL, whatever their length; and each record gets its own id, in order."""
    audit_buffer.drain()
    written = []
    with all_sql() as statements:
        for length in range(1, 121):
            for i in range(length):
                audit_buffer.add(_record(acme, tool=f"t{length}-{i}"))
            written += _flushed()
    assert len(written) == AuditRecord.objects.count() == sum(range(1, 121))
    assert sorted(r.pk for r in written) == [r.pk for r in written]
    assert {r.pk: r.tool for r in written} == dict(AuditRecord.objects.values_list("id", "tool"))
    writes = {s for s in statements if s.startswith(("INSERT", "COPY"))}
    assert len(writes) == 1, writes


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's INSERTs")
def test_a_flush_on_sqlite_pauses_between_its_inserts(acme, monkeypatch):
    """The flush thread sleeps between two groups of records, so the event loop's thread gets
    the interpreter: a tools/call that arrives during a flush waits for one group's records,
    not for the 5 ms switch interval (bench/gateway_calls.py's p99 at one connection)."""
    audit_buffer.drain()
    records = [_record(acme, tool=f"t{i}") for i in range(23)]
    for record in records:
        audit_buffer.add(record)
    with all_sql() as statements:
        monkeypatch.setattr(events.audit.time, "sleep", lambda s: statements.append(f"sleep {s}"))
        written = _flushed()
    monkeypatch.undo()
    assert [r.tool for r in written] == [f"t{i}" for i in range(23)]
    pause = f"sleep {events.audit.STATEMENT_PAUSE}"
    groups = [s.split(" VALUES ")[0] if s.startswith("INSERT") else s for s in statements[1:]]
    insert = events.audit._statement().split(" VALUES ")[0]
    assert statements[0] == "BEGIN IMMEDIATE"  # one transaction (committed by the connection)
    assert groups == [insert, pause, insert, pause, insert, "SELECT last_insert_rowid()"]


def test_a_flush_stores_what_bulk_create_stores(acme, django_user_model):
    """The flush's own INSERT (events.audit.audit_insert) adapts values as Django does: every
    column holds, as the database stores it, what bulk_create stores for the same record."""
    audit_buffer.drain()
    user = django_user_model.objects.get(username="bob")
    plus_two = timezone.get_fixed_timezone(120)
    samples = [
        _fields(acme),
        _fields(
            acme,
            created=timezone.now().astimezone(plus_two) - timedelta(microseconds=7),
            user_id=user.pk,
            tool="query",
            outcome="error",
            latency_ms=2_000_000_000,
            upstream_request_id="intuit-tid-1",
            arguments_kept="full",
            arguments={"text": "é \u2028 \"quoted\" 'single' %s %%", "n": [1, 2.5, None, True]},
            error="Error executing tool query: boom",
        ),
        _fields(acme, arguments=[1, "two"], username="", client_id=""),
        _fields(acme, arguments="just a string", tool="t" * 200),
    ]
    fields = [f for f in AuditRecord._meta.concrete_fields if not f.primary_key]

    def stored(pk):  # the row as the database holds it, not as Django reads it back
        q = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(q(f.column) for f in fields)} "
                f"FROM {q(AuditRecord._meta.db_table)} WHERE id = %s",
                [pk],
            )
            return cursor.fetchone()

    expected = AuditRecord.objects.bulk_create([AuditRecord(**sample) for sample in samples])
    for sample in samples:
        audit_buffer.add(audit_record_new(**sample))
    written = _flushed()
    assert [r.pk for r in written] == sorted(r.pk for r in written)
    assert not ({r.pk for r in written} & {r.pk for r in expected})
    for by_django, by_flush in zip(expected, written, strict=True):
        assert not by_flush._state.adding
        assert stored(by_flush.pk) == stored(by_django.pk)
        read = AuditRecord.objects.get(pk=by_flush.pk)
        assert {f.attname: getattr(read, f.attname) for f in fields} == {
            f.attname: getattr(by_django, f.attname) for f in fields
        }


@postgres_only("PostgreSQL's COPY")
def test_a_flush_on_postgresql_is_one_copy_with_ids_from_the_sequence(acme):
    """On PostgreSQL the flush takes its ids from the table's sequence and writes its records
    with one binary COPY, which formats rows in psycopg's C code (an INSERT of arrays dumped
    every element in Python); the COPY goes through Django's execute wrappers and query log."""
    from django.test.utils import CaptureQueriesContext

    audit_buffer.drain()
    audit_buffer.add(_record(acme, tool="first"))
    audit_buffer.flush()  # the process's first looks the sequence's name up, once
    records = [_record(acme, tool=f"t{i}") for i in range(120)]
    for record in records:
        audit_buffer.add(record)
    with all_sql() as statements, CaptureQueriesContext(connection) as logged:
        written = _flushed()
    (copy,) = writes(statements)
    assert copy.startswith("COPY ") and "FROM STDIN (FORMAT BINARY)" in copy
    assert [s.split()[0] for s in statements] == ["SELECT", "COPY"]
    assert copy in [q["sql"] for q in logged.captured_queries]  # then COMMIT
    assert [r.tool for r in written] == [f"t{i}" for i in range(120)]
    ids = [r.pk for r in written]
    assert ids == sorted(set(ids))
    stored = dict(AuditRecord.objects.exclude(tool="first").values_list("pk", "tool"))
    assert stored == {r.pk: r.tool for r in written}
    later = AuditRecord(**_fields(acme, tool="later"))
    AuditRecord.objects.bulk_create([later])  # the ORM's next id is past the flush's
    assert later.pk > ids[-1]


def test_the_buffer_holds_each_records_values_and_a_flush_gives_back_saved_records(acme):
    """The buffer keeps each record as a plain tuple of its values in the order of the model's
    fields (events.audit.audit_record_new), not as a model instance (638 bytes a waiting record
    with its values against 910, bench/audit_buffer.py); a flush gives each back after its new
    id, and audit_records_written makes the saved record Django makes, field for field."""
    fields = _fields(
        acme,
        outcome="error",
        latency_ms=12,
        upstream_request_id="tid-1",
        arguments_kept="full",
        arguments={"text": "hi"},
        error="boom",
    )
    audit_buffer.drain()
    audit_buffer.add(audit_record_new(**fields))
    (held,) = audit_buffer.drain()
    by_django = AuditRecord(**fields)
    assert type(held) is tuple
    assert held == tuple(getattr(by_django, name) for name in FIELD_NAMES[1:])
    audit_buffer.add(held)
    (row,) = audit_buffer.flush()
    (written,) = audit_records_written([row])
    assert row == (written.pk, *held)
    assert not written._state.adding and written._state.db == "default"
    assert {name: getattr(written, name) for name in FIELD_NAMES[1:]} == fields
    assert AuditRecord.objects.filter(pk=written.pk, tool="echo", upstream_request_id="tid-1")


def test_housekeeping_prunes_records_past_the_retention(acme, settings):
    settings.AUDIT_RETENTION_DAYS = 7
    AuditRecord.objects.bulk_create(
        [
            AuditRecord(**_fields(acme, tool="old", created=timezone.now() - timedelta(days=8))),
            AuditRecord(**_fields(acme, tool="recent", created=timezone.now() - timedelta(days=6))),
        ]
    )
    assert housekeeping_run()["audit_records"] == 1
    assert list(AuditRecord.objects.values_list("tool", flat=True)) == ["recent"]


def test_records_stream_to_a_signed_webhook_and_failures_log_no_secrets(
    live_url, acme, settings, caplog
):
    received = []

    async def receiver(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        received.append((scope["query_string"], headers, body))
        status = 500 if b"fail" in scope["query_string"] else 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve_in_thread(receiver, lifespan="off") as hook:
        settings.AUDIT_WEBHOOK_URL = f"{hook}/audit?key=hook-key-123"
        settings.AUDIT_WEBHOOK_SECRET = "signing-secret-456"
        settings.AUDIT_BATCH_SIZE = 2
        connector = acme["connector"]
        token, _ = _token(live_url, connector)
        _call(connector.url, token, "echo", {"text": "a"}, rpc_id=1)
        _call(connector.url, token, "whoami", {}, rpc_id=2)
        deadline = time.monotonic() + 10
        while not received:
            assert time.monotonic() < deadline, "the webhook got nothing"
            time.sleep(0.05)
        _, headers, body = received[0]
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert [r["tool"] for r in lines] == ["echo", "whoami"]
        assert {r["id"] for r in lines} == set(AuditRecord.objects.values_list("id", flat=True))
        expected = hmac.new(b"signing-secret-456", body, hashlib.sha256).hexdigest()
        assert headers[b"x-audit-signature"] == f"sha256={expected}".encode()

        settings.AUDIT_WEBHOOK_URL = f"{hook}/audit?fail=1&key=hook-key-123"
        with caplog.at_level(logging.WARNING, logger="events.audit"):
            _call(connector.url, token, "echo", {"text": "b"}, rpc_id=3)
            _call(connector.url, token, "echo", {"text": "c"}, rpc_id=4)
            deadline = time.monotonic() + 10
            while len(received) < 2 or "answered 500" not in caplog.text:
                assert time.monotonic() < deadline, "the failing webhook was not tried"
                time.sleep(0.05)
    assert "127.0.0.1" in caplog.text
    assert "hook-key-123" not in caplog.text and "signing-secret-456" not in caplog.text
    assert AuditRecord.objects.count() == 4  # the database has them all the same


def test_a_record_of_a_deleted_user_or_connector_does_not_hold_up_the_others(acme):
    """Records wait in the buffer for up to AUDIT_FLUSH_SECONDS: what they refer to may be
    deleted meanwhile. The flush still writes every record, and keeps writing later ones."""
    from django.contrib.auth import get_user_model

    from tenants.services import connector_create

    audit_buffer.drain()
    gone = get_user_model().objects.create_user("gone", password="gone-pass-123")
    doomed = connector_create(tenant=acme["tenant"], kind="echo", slug="doomed")
    audit_buffer.add(_record(acme, tool="by-gone", user_id=gone.pk))
    audit_buffer.add(_record(acme, tool="on-doomed", connector_id=doomed.pk))
    audit_buffer.add(_record(acme, tool="fine"))
    gone.delete()
    doomed.delete()
    assert len(audit_buffer.flush()) == 3
    audit_buffer.add(_record(acme, tool="later"))
    assert [r.tool for r in _flushed()] == ["later"]
    assert audit_buffer.pending() == 0
    tools = set(AuditRecord.objects.values_list("tool", flat=True))
    assert {"by-gone", "fine", "later"} <= tools
