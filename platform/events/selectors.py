"""Reads on the connector event log: raw events, call counts, and the kinds a filter offers."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from events.models import AuditRecord, Event
from events.trace import KNOWN_KINDS
from tenants.models import Connector

CALL_KINDS = ("mcp.first_call", "mcp.call")


def calls_and_errors(connector_ids: list[int], since: datetime) -> dict[int, tuple[int, int]]:
    """(calls, errors) of each connector since ``since``, per-minute aggregates included."""
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    recent = Event.objects.filter(connector_id__in=connector_ids, created__gte=since)
    for row in (
        recent.filter(kind__in=CALL_KINDS)
        .values("connector_id")
        .annotate(n=Count("id"), errors=Count("id", filter=~Q(outcome=Event.Outcome.OK)))
    ):
        counts[row["connector_id"]][0] += row["n"]
        counts[row["connector_id"]][1] += row["errors"]
    # Rejected requests (revoked or foreign tokens) are errors the client saw, too.
    for row in recent.filter(kind="mcp.rejected").values("connector_id").annotate(n=Count("id")):
        counts[row["connector_id"]][1] += row["n"]
    # Routine successful calls are aggregated per minute: add their counts.
    for connector_id, detail in recent.filter(kind="mcp.calls").values_list(
        "connector_id", "detail"
    ):
        try:
            counts[connector_id][0] += int((detail or {}).get("count", 0))
        except (TypeError, ValueError):
            continue
    return {k: (v[0], v[1]) for k, v in counts.items()}


def own_calls_and_errors(
    connector_ids: list[int], *, user, since: datetime
) -> dict[int, tuple[int, int]]:
    """(calls, errors) of one member: individual events carry a user, the aggregates do not."""
    own = Event.objects.filter(connector_id__in=connector_ids, user=user, created__gte=since)
    return {
        row["connector_id"]: (row["n"], row["errors"])
        for row in own.filter(kind__in=(*CALL_KINDS, "mcp.rejected"))
        .values("connector_id")
        .annotate(n=Count("id"), errors=Count("id", filter=~Q(outcome=Event.Outcome.OK)))
    }


# Failures a connector's health counts: what its upstream did wrong, and what nobody explained
# (a crash, an internal error). A caller's bad input, a tool-policy refusal, a tool's own error
# answer or a connection to be reconnected (which the connection's status shows) do not count.
FAULT_CAUSES = ("upstream", "connector")


@dataclass
class Faults:
    """A connector's counted failures of one cause in a window, and the newest one's detail."""

    count: int = 0
    latest: str = ""


def recent_faults(
    connector_ids: list[int], since: datetime, *, user=None, limit: int = 5000
) -> dict[int, dict[str, Faults]]:
    """connector id -> cause -> Faults, for failed MCP calls since ``since`` (with ``user``: only
    theirs). Failed calls are rare and written one row each, so they are read and sorted here,
    the same on every database."""
    failed = Event.objects.filter(
        connector_id__in=connector_ids,
        kind__in=CALL_KINDS,
        outcome=Event.Outcome.ERROR,
        created__gte=since,
    )
    if user is not None:
        failed = failed.filter(user=user)
    result: dict[int, dict[str, Faults]] = defaultdict(dict)
    rows = failed.order_by("-created", "-id").values_list("connector_id", "detail")[:limit]
    for connector_id, detail in rows:
        detail = detail if isinstance(detail, dict) else {}
        cause = detail.get("cause")
        if cause not in FAULT_CAUSES:
            continue
        faults = result[connector_id].setdefault(cause, Faults())
        faults.count += 1
        if not faults.latest:  # newest first
            faults.latest = str(detail.get("cause_detail") or detail.get("error") or "")[:200]
    return dict(result)


def events_of(
    connector: Connector,
    *,
    user=None,
    client_id: str = "",
    kind: str = "",
    outcome: str = "",
    since: datetime | None = None,
) -> QuerySet[Event]:
    """The connector's raw events, newest first, filtered (with ``user``: only their own)."""
    events = Event.objects.select_related("user").filter(connector=connector)
    if user is not None:
        events = events.filter(user=user)
    if client_id:
        events = events.filter(client_id=client_id)
    if kind:
        events = events.filter(kind=kind)
    if outcome:
        events = events.filter(outcome=outcome)
    if since is not None:
        events = events.filter(created__gte=since)
    return events.order_by("-created", "-id")


def event_kinds(connector: Connector) -> list[str]:
    """The kinds a trace filter offers: every kind the platform records, and any other this
    connector has seen."""
    seen = set(
        Event.objects.filter(connector=connector).values_list("kind", flat=True).distinct()[:200]
    )
    return sorted(set(KNOWN_KINDS) | seen)


def audit_records_of(
    tenant_id: int,
    *,
    user=None,
    connector_id: int | None = None,
    member: str = "",
    client_id: str = "",
    tool: str = "",
    outcome: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    search: str = "",
) -> QuerySet[AuditRecord]:
    """A tenant's audit records, newest first, filtered (with ``user``: only their own calls).

    ``search`` matches tool, member, client and upstream request id (case-insensitive)."""
    records = AuditRecord.objects.select_related("connector").filter(tenant_id=tenant_id)
    if user is not None:
        records = records.filter(user=user)
    if connector_id:
        records = records.filter(connector_id=connector_id)
    if member:
        records = records.filter(username=member)
    if client_id:
        records = records.filter(client_id=client_id)
    if tool:
        records = records.filter(tool=tool)
    if outcome:
        records = records.filter(outcome=outcome)
    if since is not None:
        records = records.filter(created__gte=since)
    if until is not None:
        records = records.filter(created__lt=until)
    if search:
        records = records.filter(
            Q(tool__icontains=search)
            | Q(username__icontains=search)
            | Q(client_id__icontains=search)
            | Q(upstream_request_id__icontains=search)
        )
    return records.order_by("-created", "-id")
