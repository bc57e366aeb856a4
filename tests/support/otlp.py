"""An OpenTelemetry collector for tests: receives OTLP/HTTP (protobuf) traces and logs on a
loopback port and keeps what it was sent, decoded with the official protobuf classes."""

import gzip
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class Received:
    def __init__(self) -> None:
        self.spans: list = []  # (service name, Span)
        self.logs: list = []  # (service name, LogRecord)


def _service(resource) -> str | None:
    return {a.key: a.value.string_value for a in resource.attributes}.get("service.name")


@contextmanager
def otlp_collector():
    """Yield (endpoint, Received) while a collector listens; the endpoint is what
    OTEL_EXPORTER_OTLP_ENDPOINT takes."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    service = _service(resource_spans.resource)
                    for scope_spans in resource_spans.scope_spans:
                        received.spans += [(service, span) for span in scope_spans.spans]
            elif self.path == "/v1/logs":
                request = ExportLogsServiceRequest()
                request.ParseFromString(body)
                for resource_logs in request.resource_logs:
                    service = _service(resource_logs.resource)
                    for scope_logs in resource_logs.scope_logs:
                        received.logs += [(service, log) for log in scope_logs.log_records]
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()
