"""Figures no single process holds, read from the database and the broker when Prometheus
scrapes: upstream connections by status, how long ago the refresh sweep ran, and how many
tasks wait in the Celery queue. Every web replica answers the same, whichever one is scraped."""

import logging

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from upstream.selectors import upstream_last_sweep, upstream_status_counts

log = logging.getLogger(__name__)


def celery_queue_depth(queue: str) -> int:
    """Messages waiting in ``queue`` on the configured broker (Redis or the embedded folder)."""
    from kombu import Connection  # only when scraped: the web process does not load it at start

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    with Connection(
        settings.CELERY_BROKER_URL, transport_options=options, connect_timeout=2
    ) as connection:
        return connection.default_channel.queue_declare(queue=queue).message_count


class UpstreamCollector:
    """A prometheus_client collector; each scrape runs two small queries and one broker call."""

    def __init__(self, queues: list[str]) -> None:
        self.queues = queues

    def describe(self):
        return []  # nothing is read when the collector is registered, only when scraped

    def collect(self):
        connections = GaugeMetricFamily(
            "mcp_upstream_connections", "Upstream connections by status", labels=["status"]
        )
        for status, count in upstream_status_counts().items():
            connections.add_metric([status], count)
        yield connections

        lag = GaugeMetricFamily(
            "mcp_upstream_sweep_lag_seconds",
            "Seconds since the refresh sweep last ran (beat stalled when this keeps growing; "
            "absent before the first sweep)",
        )
        last = upstream_last_sweep()
        if last is not None:
            lag.add_metric([], (timezone.now() - last).total_seconds())
        yield lag

        depth = GaugeMetricFamily(
            "mcp_celery_queue_depth", "Tasks waiting in the Celery queue", labels=["queue"]
        )
        for queue in self.queues:
            try:
                depth.add_metric([queue], celery_queue_depth(queue))
            except Exception as exc:  # the broker is down: say so by leaving the figure out
                log.warning("queue depth of %s unknown: %s", queue, exc.__class__.__name__)
        yield depth
