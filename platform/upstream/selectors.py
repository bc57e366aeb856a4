"""Reads about upstream connections for the dashboard, the API, readiness and consent."""

from datetime import datetime

from django.db.models import Count

from connectors.base import get_kind
from events.models import Event
from tenants.selectors import connector_holds_upstream
from upstream.models import UpstreamConnection

# A connection in these states serves no call until someone connects the account again.
UNUSABLE = (UpstreamConnection.Status.NEEDS_REAUTH, UpstreamConnection.Status.REVOKED)


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


def shared_upstream_problem(*, connector) -> str:
    """Why no member can use ``connector`` now, which only a tenant admin can fix: its kind
    holds one shared upstream connection (shared mode) and the tenant's is missing or lost.
    Empty when it is usable, and in per-user mode (each member connects their own in the hop).
    """
    if connector.mode != connector.Mode.SHARED or not connector_holds_upstream(connector):
        return ""
    status = (
        UpstreamConnection.objects.filter(connector=connector, user__isnull=True)
        .values_list("status", flat=True)
        .first()
    )
    if status is not None and status not in UNUSABLE:
        return ""
    what = "has not been connected yet" if status is None else "needs to be reconnected"
    return (
        f"{connector.tenant.name}'s {get_kind(connector.kind).title} account {what}. "
        "A tenant admin connects it once from the dashboard; then connect your client again."
    )
