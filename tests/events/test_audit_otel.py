"""The audit log streamed to an OpenTelemetry collector's logs (AUDIT_OTLP_LOGS): each written
batch reaches the collector over OTLP/HTTP, one log record per tool call."""

import json
import os
import subprocess
import sys
import time

import pytest

from events import audit
from events.models import AuditRecord
from tests.support.flow import OAuthClient, mcp_post
from tests.support.oauth import Browser
from tests.support.otlp import otlp_collector

pytestmark = pytest.mark.django_db(transaction=True)


def _call(url, token, tool, arguments) -> None:
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    assert mcp_post(url, token, payload).status_code == 200


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


@pytest.fixture
def streamed(monkeypatch, settings):
    with otlp_collector() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "100")
        settings.AUDIT_OTLP_LOGS = True
        audit._otel_logger = None  # built on first use, with this collector
        try:
            yield received
        finally:
            audit._otel_logger = None


def test_written_audit_records_reach_the_collector_as_log_records(
    live_url, acme, settings, streamed
):
    settings.AUDIT_BATCH_SIZE = 2  # the server writes (and streams) as soon as both are kept
    connector = acme["connector"]
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), connector.url)["access_token"]
    _call(connector.url, token, "echo", {"text": "hello"})
    _call(connector.url, token, "fail", {"message": "boom", "api_token": "t0k"})

    deadline = time.monotonic() + 30
    while len(streamed.logs) < 2:
        assert time.monotonic() < deadline, f"{len(streamed.logs)} of 2 log records arrived"
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(streamed.logs) == 2
    assert AuditRecord.objects.count() == 2  # written first, then streamed
    by_tool = {}
    for service, log in streamed.logs:
        assert service == "mcp-platform-web"
        assert log.event_name == "mcp.tool_call"
        body = _value(log.body)
        attributes = {kv.key: _value(kv.value) for kv in log.attributes}
        assert attributes["mcp.tool"] == body["tool"]
        assert attributes["mcp.connector_id"] == connector.pk
        by_tool[body["tool"]] = (log, body)
    ok, ok_body = by_tool["echo"]
    failed, failed_body = by_tool["fail"]
    assert (ok_body["outcome"], ok_body["member"], ok_body["client_id"]) == (
        "ok",
        "bob",
        client.client_id,
    )
    assert ok.severity_text == "INFO" and failed.severity_text == "WARN"
    assert "hello" not in ok_body["arguments"]  # a read tool's arguments: a digest
    assert json.loads(failed_body["arguments"]) == {"message": "boom", "api_token": "[redacted]"}
    assert failed_body["error"] == "Error executing tool fail: boom"
    record = AuditRecord.objects.get(tool="echo")
    assert ok.time_unix_nano == int(record.created.timestamp() * 1e9)


def test_the_stream_needs_a_collector(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DATABASE_URL"))}
    env |= {
        "AUDIT_OTLP_LOGS": "true",
        "VAR_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    run = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "AUDIT_OTLP_LOGS needs OTEL_EXPORTER_OTLP_ENDPOINT" in run.stderr
