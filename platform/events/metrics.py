"""Prometheus counters kept by the processes that do the work: tool calls (the gateway, on the hot
path: one counter and one histogram observation) and upstream refreshes (the refresh engine, in
web and worker processes alike).

Figures that belong to no one process (connections by status, sweep lag, queue depth) are read
from the database and the broker when Prometheus scrapes (``upstream.metrics``).

With ``PROMETHEUS_MULTIPROC_DIR`` set before the process starts, prometheus_client keeps these
values in files there, and a scrape of any process adds up every process that shares the folder
(uvicorn's workers): ``metrics_registry`` reads them.
"""

import os
import threading
from types import SimpleNamespace

from django.conf import settings

_made: SimpleNamespace | None = None
_making = threading.Lock()


def _series() -> SimpleNamespace:
    """This process's counters, made at their first use: prometheus_client loads only where
    metrics are on (about 0.7 MB in every web process otherwise, bench/web_memory.py)."""
    global _made
    if _made is not None:
        return _made
    with _making:  # a worker's threads count refreshes at once: each series registered once
        if _made is None:
            from prometheus_client import Counter, Histogram

            _made = SimpleNamespace(
                tool_calls=Counter(
                    "mcp_tool_calls",
                    "tools/call requests that reached a connector's tools, by outcome (ok, "
                    "error, denied)",
                    ["tenant", "connector", "outcome"],
                ),
                tool_call_seconds=Histogram(
                    "mcp_tool_call_duration_seconds",
                    "Time from a tools/call's arrival to its answer",
                    ["tenant", "connector"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                ),
                upstream_refreshes=Counter(
                    "mcp_upstream_refreshes",
                    "Upstream token refreshes, by provider and outcome (ok, error: retried, "
                    "reauth: needs a reconnect)",
                    ["provider", "outcome"],
                ),
            )
        return _made


def _counting() -> bool:
    """Whether metrics are on (``METRICS_TOKEN`` or ``METRICS_ALLOW_IPS``, as for /metrics).
    Off, nobody can read them, and every series would hold memory for the life of the
    process: about 5 KB per (tenant, connector) called, growing with the connectors served."""
    return bool(settings.METRICS_TOKEN or settings.METRICS_ALLOW_IPS)


def metrics_tool_call(*, tenant: str, connector: str, outcome: str, seconds: float) -> None:
    """Count one tools/call and its latency (a few microseconds, no I/O), when metrics are on."""
    if not _counting():
        return
    series = _series()
    series.tool_calls.labels(tenant, connector, outcome).inc()
    series.tool_call_seconds.labels(tenant, connector).observe(seconds)


def metrics_refresh(*, provider: str, outcome: str) -> None:
    if not _counting():
        return
    _series().upstream_refreshes.labels(provider, outcome).inc()


def metrics_registry(*collectors):
    """What a scrape shows: this process's metrics (or, in multiprocess mode, those of every
    process sharing ``PROMETHEUS_MULTIPROC_DIR``) and ``collectors``, read at scrape time."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    _series()  # our series are shown, with no samples yet, before anything was counted
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    for collector in collectors:
        registry.register(collector)
    return registry


class _ProcessMetrics:
    """The default registry (our metrics, and the process's CPU, memory and GC) as a collector."""

    def describe(self):
        return []

    def collect(self):
        from prometheus_client import REGISTRY

        return REGISTRY.collect()
