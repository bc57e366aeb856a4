"""OpenTelemetry tracing: a tool call's server span continues the client's ``traceparent`` and
holds the upstream HTTP call; a Celery worker's task span continues the trace that sent it,
exported over OTLP to a collector."""

import secrets
import time

import pytest
import requests
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from config.tracing import tracing_asgi, tracing_instrument, tracing_uninstrument
from tenants.services import connector_create
from tests.support.flow import OAuthClient
from tests.support.live import LiveServer
from tests.support.oauth import Browser
from tests.support.otlp import otlp_collector
from tests.support.workers import celery_workers
from upstream import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spans():
    """A tracer provider exporting to memory, with httpx and Celery instrumented for the test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing_instrument(provider)
    try:
        yield provider, exporter
    finally:
        tracing_uninstrument()


@pytest.fixture
def traced_platform(spans, _live_app):
    """The platform's ASGI app as config.asgi wraps it when tracing is on, on its own port."""
    from config.asgi import PlatformApplication

    provider, _ = spans
    server = LiveServer()
    server.start(tracing_asgi(PlatformApplication(), provider), lifespan="on")
    try:
        yield server.url
    finally:
        server.wait_idle()
        server.stop()


def test_a_tool_call_continues_the_clients_trace_and_holds_the_upstream_call(
    live_url, acme, quickbooks_on_emulator, spans, traced_platform
):
    _, exporter = spans
    emulator = quickbooks_on_emulator
    connector = connector_create(
        tenant=acme["tenant"], kind="quickbooks", slug="books", mode="shared"
    )
    emulator.store_connection(connector=connector)
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), connector.url)["access_token"]
    exporter.clear()

    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "company_info", "arguments": {}},
    }
    # A client of its own tracing (requests: not the httpx this process instruments).
    response = requests.post(
        f"{traced_platform}/t/acme/books/mcp",
        json=payload,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-06-18",
            "traceparent": f"00-{trace_id}-{parent_id}-01",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["isError"] is False

    deadline = time.monotonic() + 10
    while not any(s.kind == SpanKind.SERVER for s in exporter.get_finished_spans()):
        assert time.monotonic() < deadline, "no server span was exported"
        time.sleep(0.05)
    finished = exporter.get_finished_spans()
    (server,) = [s for s in finished if s.kind == SpanKind.SERVER]
    assert server.context.trace_id == int(trace_id, 16)
    assert server.parent is not None and server.parent.span_id == int(parent_id, 16)
    assert server.parent.is_remote
    assert server.attributes.get("http.route", server.name).startswith("POST")
    upstream = [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT
        and str(s.attributes.get("http.url", s.attributes.get("url.full", ""))).startswith(
            emulator.base_url
        )
    ]
    assert upstream, [(s.name, s.kind, dict(s.attributes)) for s in finished]
    by_id = {s.context.span_id: s for s in finished}
    for span in upstream:
        assert span.context.trace_id == int(trace_id, 16)
        ancestor = span
        while ancestor.parent is not None and ancestor.parent.span_id in by_id:
            ancestor = by_id[ancestor.parent.span_id]
        assert ancestor is server  # the upstream call happened inside the tool call's span
    assert all("?" not in str(s.attributes.get("http.url", "")) for s in finished)


def test_query_strings_stay_out_of_server_spans(live_url, spans, traced_platform):
    _, exporter = spans
    exporter.clear()
    requests.get(f"{traced_platform}/healthz?code=secret-code&state=s", timeout=30)
    deadline = time.monotonic() + 10  # the span ends just after the answer went out
    while not any(s.kind == SpanKind.SERVER for s in exporter.get_finished_spans()):
        assert time.monotonic() < deadline, "no server span was exported"
        time.sleep(0.05)
    (server,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    text = repr(dict(server.attributes))
    assert "secret-code" not in text
    assert "/healthz" in text


def test_a_worker_exports_its_task_span_as_a_child_of_the_sender(acme, spans):
    provider, exporter = spans
    with otlp_collector() as (endpoint, received):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with celery_workers(1, env):
            with trace.get_tracer("test", tracer_provider=provider).start_as_current_span("send"):
                tasks.upstream_sweep.delay()
            (publish,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.PRODUCER]
            deadline = time.monotonic() + 60
            while not any(s.name.startswith("run/") for _, s in received.spans):
                assert time.monotonic() < deadline, "the worker exported no task span"
                time.sleep(0.1)
    (service, run), *_ = [(n, s) for n, s in received.spans if s.name.startswith("run/")]
    assert run.name == "run/upstream.tasks.upstream_sweep"
    assert service == "mcp-platform-worker"
    assert run.trace_id == publish.context.trace_id.to_bytes(16, "big")
    assert run.parent_span_id == publish.context.span_id.to_bytes(8, "big")
