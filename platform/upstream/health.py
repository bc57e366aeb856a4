"""Health at a glance, for the dashboard and the API: each connector's upstream connections,
connected clients and recent calls, and each tenant's sum.

It lives in ``upstream`` because that is the domain app that may read the others (events,
authserver, tenants) without an import loop; the pieces are those apps' own selectors.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from authserver.selectors import clients_connected_counts
from events.selectors import calls_and_errors, own_calls_and_errors
from tenants.models import Connector, Membership, Tenant
from upstream.models import UpstreamConnection

STATS_WINDOW = timedelta(hours=24)


@dataclass
class ConnectorStats:
    """One connector's health: what an overview badge shows."""

    connector_id: int
    enabled: bool
    upstream: dict[str, int] = field(default_factory=dict)  # status -> connections
    last_refresh_at: datetime | None = None
    clients_connected: int = 0
    calls_24h: int = 0
    errors_24h: int = 0

    @property
    def healthy(self) -> bool:
        broken = sum(
            self.upstream.get(s, 0)
            for s in (UpstreamConnection.Status.NEEDS_REAUTH, UpstreamConnection.Status.ERROR)
        )
        return self.enabled and broken == 0

    @property
    def health(self) -> str:
        """ok, warning (errors or connections to fix) or off (disabled)."""
        if not self.enabled:
            return "off"
        return "ok" if self.healthy and not self.errors_24h else "warning"


@dataclass
class TenantStats:
    tenant: Tenant
    connectors: int = 0
    connectors_enabled: int = 0
    upstream: dict[str, int] = field(default_factory=dict)
    last_refresh_at: datetime | None = None
    clients_connected: int = 0
    calls_24h: int = 0
    errors_24h: int = 0
    members: int = 0

    @property
    def health(self) -> str:
        if not self.tenant.enabled:
            return "off"
        broken = self.upstream.get("needs_reauth", 0) + self.upstream.get("error", 0)
        return "ok" if not broken and not self.errors_24h else "warning"


def connector_stats(connectors: list[Connector], *, user=None) -> dict[int, ConnectorStats]:
    """Health of each connector; with ``user`` (a member), only their own connections and
    clients count."""
    ids = [c.pk for c in connectors]
    stats = {c.pk: ConnectorStats(connector_id=c.pk, enabled=c.enabled) for c in connectors}
    connections = UpstreamConnection.objects.filter(connector_id__in=ids)
    if user is not None:
        connections = connections.filter(Q(user=user) | Q(user__isnull=True))
    for row in connections.values("connector_id", "status").annotate(n=Count("id")):
        stats[row["connector_id"]].upstream[row["status"]] = row["n"]
    for row in connections.values("connector_id").annotate(last=Max("last_refresh_at")):
        stats[row["connector_id"]].last_refresh_at = row["last"]

    clients = clients_connected_counts(ids, user_id=user.pk if user is not None else None)
    for connector_id, n in clients.items():
        stats[connector_id].clients_connected = n

    since = timezone.now() - STATS_WINDOW
    calls = (
        calls_and_errors(ids, since)
        if user is None
        else own_calls_and_errors(ids, user=user, since=since)
    )
    for connector_id, (n, errors) in calls.items():
        stats[connector_id].calls_24h = n
        stats[connector_id].errors_24h = errors
    return stats


def tenant_stats(tenants: QuerySet[Tenant]) -> list[TenantStats]:
    """The operator's overview: each tenant's connectors, summed."""
    tenants = list(tenants)
    connectors = list(
        Connector.objects.select_related("tenant").filter(tenant__in=tenants).order_by("slug")
    )
    per_connector = connector_stats(connectors)
    members = dict(
        Membership.objects.filter(tenant__in=tenants)
        .values_list("tenant_id")
        .annotate(n=Count("id"))
        .values_list("tenant_id", "n")
    )
    result = {t.pk: TenantStats(tenant=t, members=members.get(t.pk, 0)) for t in tenants}
    for connector in connectors:
        summary = result[connector.tenant_id]
        stats = per_connector[connector.pk]
        summary.connectors += 1
        summary.connectors_enabled += int(connector.enabled)
        for status, n in stats.upstream.items():
            summary.upstream[status] = summary.upstream.get(status, 0) + n
        if stats.last_refresh_at and (
            summary.last_refresh_at is None or stats.last_refresh_at > summary.last_refresh_at
        ):
            summary.last_refresh_at = stats.last_refresh_at
        summary.clients_connected += stats.clients_connected
        summary.calls_24h += stats.calls_24h
        summary.errors_24h += stats.errors_24h
    return [result[t.pk] for t in tenants]


def upstream_connections_of(connector: Connector, *, user=None) -> QuerySet[UpstreamConnection]:
    """The connector's upstream connections (with ``user``: the shared one and their own)."""
    connections = UpstreamConnection.objects.select_related("user", "connected_by").filter(
        connector=connector
    )
    if user is not None:
        connections = connections.filter(Q(user=user) | Q(user__isnull=True))
    return connections.order_by("user__username")


def upstream_status_counts(stats_upstream: dict[str, int]) -> list[tuple[str, str, int]]:
    """(status, label, count) in the state machine's order, for badges."""
    labels = dict(UpstreamConnection.Status.choices)
    return [(s, labels[s], stats_upstream[s]) for s in labels if stats_upstream.get(s)]
