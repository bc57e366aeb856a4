"""The Prometheus endpoint: ``/metrics`` on the web app, and the same figures of a Celery worker
on a port of its own (``METRICS_WORKER_PORT``).

Off unless ``METRICS_TOKEN`` or ``METRICS_ALLOW_IPS`` is set (404 otherwise, like any unknown
path). A scraper presents ``Authorization: Bearer <METRICS_TOKEN>``, or calls from an address in
``METRICS_ALLOW_IPS`` as the platform sees it (behind a trusted proxy, the real client's, so the
public never qualifies through the proxy).
"""

import hmac
import ipaddress
import logging
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.proxy import client_address
from events.metrics import metrics_registry
from upstream.metrics import UpstreamCollector

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


def metrics_view(request):
    refused = metrics_refusal(request.headers.get("authorization", ""), client_address(request))
    if refused == 404:
        return HttpResponse("Not found\n", status=404, content_type="text/plain")
    if refused:
        response = HttpResponse("A bearer token is needed\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = metrics_registry(UpstreamCollector(_celery_queues()))
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass


def worker_metrics_app(environ, start_response):
    """A Celery worker's own counters (the refreshes it did), under the same protection."""
    refused = metrics_refusal(environ.get("HTTP_AUTHORIZATION", ""), environ.get("REMOTE_ADDR"))
    if refused:
        start_response(f"{refused} Refused", [("Content-Type", "text/plain")])
        return [b"Refused\n"]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [generate_latest(metrics_registry())]


def worker_metrics_serve(port: int, address: str):
    """Serve ``worker_metrics_app`` from a daemon thread; returns the server."""
    import threading

    server = make_server(address, port, worker_metrics_app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("worker metrics on %s:%d/metrics", address, server.server_port)
    return server
