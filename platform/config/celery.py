"""The Celery app: Redis as broker in production, a folder under ./var in the embedded default."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _worker_metrics(**kwargs) -> None:
    """A worker's own counters (its refreshes) on METRICS_WORKER_PORT, when metrics are on."""
    from django.conf import settings

    from config.metrics import metrics_enabled, worker_metrics_serve

    if settings.METRICS_WORKER_PORT and metrics_enabled():
        worker_metrics_serve(settings.METRICS_WORKER_PORT, settings.METRICS_WORKER_ADDRESS)


@signals.worker_init.connect
def _worker_tracing(**kwargs) -> None:
    """Trace tasks and their outbound HTTP when an OTLP endpoint is configured."""
    from config.tracing import tracing_instrument, tracing_provider

    if provider := tracing_provider("worker"):
        tracing_instrument(provider)
