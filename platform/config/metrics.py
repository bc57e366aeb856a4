"""The Prometheus endpoint: ``/metrics`` on the web app, and the same figures of a Celery worker
on a port of its own (``METRICS_WORKER_PORT``).

Off unless ``METRICS_TOKEN`` or ``METRICS_ALLOW_IPS`` is set (404 otherwise, like any unknown
path). A scraper presents ``Authorization: Bearer <METRICS_TOKEN>``, or calls from an address in
``METRICS_ALLOW_IPS`` as the platform sees it (behind a trusted proxy, the real client's, so the
public never qualifies through the proxy).

prometheus_client loads with the first scrape or count, never in a process with metrics off
(events.metrics).
"""

import hmac
import ipaddress
import logging
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings

from config.db import db_sync_to_async
from events.metrics import metrics_registry

log = logging.getLogger(__name__)


def metrics_enabled() -> bool:
    return bool(settings.METRICS_TOKEN or settings.METRICS_ALLOW_IPS)


def metrics_refusal(authorization: str, address: str | None) -> int | None:
    """The status to answer a scraper with (404 off, 401 refused), or None to serve it."""
    if not metrics_enabled():
        return 404
    scheme, _, value = (authorization or "").partition(" ")
    if settings.METRICS_TOKEN and scheme.lower() == "bearer":
        if hmac.compare_digest(value.strip().encode(), settings.METRICS_TOKEN.encode()):
            return None
    if address and settings.METRICS_ALLOW_IPS:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return 401
        if any(ip in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOW_IPS):
            return None
    return 401


def _celery_queues() -> list[str]:
    from config.celery import app

    return [app.conf.task_default_queue]


def _scrape() -> bytes:
    from prometheus_client import generate_latest

    from upstream.metrics import UpstreamCollector

    return generate_latest(metrics_registry(UpstreamCollector(_celery_queues())))


_scrape_async = db_sync_to_async(_scrape)


async def metrics_asgi(scope, receive, send) -> None:
    """``GET /metrics``, answered ahead of Django: scrapers address a replica by its IP, which
    ALLOWED_HOSTS would refuse, and nothing here builds a URL from the Host header."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    client = scope.get("client")
    refused = metrics_refusal(headers.get("authorization", ""), client[0] if client else None)
    extra: list[tuple[bytes, bytes]] = []
    if refused == 404:
        status, body, content_type = 404, b"Not found\n", b"text/plain"
    elif refused:
        status, body, content_type = 401, b"A bearer token is needed\n", b"text/plain"
        extra = [(b"www-authenticate", b'Bearer realm="metrics"')]
    else:
        from prometheus_client import CONTENT_TYPE_LATEST

        status, body, content_type = 200, await _scrape_async(), CONTENT_TYPE_LATEST.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass


def worker_metrics_app(environ, start_response):
    """A Celery worker's own counters (the refreshes it did), under the same protection."""
    refused = metrics_refusal(environ.get("HTTP_AUTHORIZATION", ""), environ.get("REMOTE_ADDR"))
    if refused:
        start_response(f"{refused} Refused", [("Content-Type", "text/plain")])
        return [b"Refused\n"]
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [generate_latest(metrics_registry())]


def worker_metrics_serve(port: int, address: str):
    """Serve ``worker_metrics_app`` from a daemon thread; returns the server."""
    import threading

    server = make_server(address, port, worker_metrics_app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("worker metrics on %s:%d/metrics", address, server.server_port)
    return server
