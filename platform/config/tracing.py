"""OpenTelemetry tracing of the ASGI app, Celery tasks and outbound HTTP (httpx), with the
official instrumentation packages. Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; then spans go to that collector over OTLP/HTTP,
and the exporter reads the rest of the standard ``OTEL_*`` variables itself (headers, timeout,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``).

A request's ``traceparent`` header is honoured: the server span continues the client's trace.
Query strings are dropped from span URLs (an OAuth callback's ``code`` and ``state``, a
webhook's key), as they are from the access log.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

# The OpenTelemetry SDK, exporter and instrumentations are imported by the functions that use
# them: with tracing off, a process never loads them (about 9 MB of resident memory).

_URL_ATTRIBUTES = ("http.url", "url.full", "http.target")
_QUERY_ATTRIBUTES = ("url.query",)


def tracing_configured() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_provider(role: str) -> TracerProvider | None:
    """This process's tracer provider exporting over OTLP, or None when tracing is off.

    ``role`` (web, worker) names the service unless ``OTEL_SERVICE_NAME`` does."""
    if not tracing_configured():
        return None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": f"mcp-platform-{role}"}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _drop_query(span, attributes) -> None:
    if not span.is_recording():
        return
    for name in _URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(name, _without_query(value))
    for name in _QUERY_ATTRIBUTES:
        if name in attributes:
            span.set_attribute(name, "[redacted]")


def _server_request_hook(span, scope) -> None:
    _drop_query(span, getattr(span, "attributes", None) or {})


def _client_request_hook(span, request) -> None:
    # The audit webhook's path may itself be a key (as in chat webhooks): keep its host only.
    from django.conf import settings

    attributes = getattr(span, "attributes", None) or {}
    _drop_query(span, attributes)
    webhook = getattr(settings, "AUDIT_WEBHOOK_URL", "")
    if webhook and span.is_recording() and str(request.url) == webhook:
        host = urlsplit(webhook)
        for name in ("http.url", "url.full"):
            if name in attributes:
                span.set_attribute(name, f"{host.scheme}://{host.netloc}/[redacted]")


async def _async_client_request_hook(span, request) -> None:
    _client_request_hook(span, request)


def tracing_instrument(provider: TracerProvider) -> None:
    """Trace outbound httpx requests and Celery tasks (sent and run) of this process."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument(
        tracer_provider=provider,
        request_hook=_client_request_hook,
        async_request_hook=_async_client_request_hook,
    )
    CeleryInstrumentor().instrument(tracer_provider=provider)


def tracing_uninstrument() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    CeleryInstrumentor().uninstrument()


def tracing_asgi(app, provider: TracerProvider):
    """``app`` with a server span per HTTP request, continuing the caller's ``traceparent``."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(
        app,
        tracer_provider=provider,
        server_request_hook=_server_request_hook,
        exclude_spans=["receive", "send"],
    )
