"""Reads about upstream connections for the dashboard, the API and readiness."""

from datetime import datetime

from django.db.models import Count

from events.models import Event
from upstream.models import UpstreamConnection


def upstream_status_counts(*, connector_ids: list[int] | None = None) -> dict[str, int]:
    """How many connections are in each status (every status present, zero included)."""
    rows = UpstreamConnection.objects.all()
    if connector_ids is not None:
        rows = rows.filter(connector_id__in=connector_ids)
    counts = dict.fromkeys(UpstreamConnection.Status.values, 0)
    for row in rows.values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def upstream_last_sweep() -> datetime | None:
    """When the background sweep last ran (its heartbeat event)."""
    return Event.objects.filter(kind="upstream.sweep").values_list("created", flat=True).first()
