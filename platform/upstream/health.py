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
from connectors.base import get_kind
from events.selectors import Faults, calls_and_errors, own_calls_and_errors, recent_faults
from tenants.models import Connector, Membership, Tenant
from tenants.selectors import connector_holds_upstream
from upstream.models import UpstreamConnection

STATS_WINDOW = timedelta(hours=24)
# Failed calls make a connector need attention while they are this recent.
FAULT_WINDOW = timedelta(hours=1)
HEALTH_LABELS = {"ok": "Healthy", "warning": "Needs attention", "off": "Disabled"}
Status = UpstreamConnection.Status


@dataclass
class ConnectorStats:
    """One connector's health: what an overview badge shows, and why."""

    connector_id: int
    enabled: bool
    upstream: dict[str, int] = field(default_factory=dict)  # status -> connections
    last_refresh_at: datetime | None = None
    clients_connected: int = 0
    calls_24h: int = 0
    errors_24h: int = 0  # every failed call the clients saw, whoever's doing it was
    # What needs attention, in words ("Shared QuickBooks not connected"); empty when healthy.
    reasons: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.enabled and not self.reasons

    @property
    def health(self) -> str:
        """ok, warning (something to fix: see ``reasons``) or off (disabled)."""
        if not self.enabled:
            return "off"
        return "ok" if not self.reasons else "warning"

    @property
    def health_label(self) -> str:
        return HEALTH_LABELS[self.health]


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
    reasons: list[str] = field(default_factory=list)  # "books: 2 members must reconnect"

    @property
    def health(self) -> str:
        if not self.tenant.enabled:
            return "off"
        return "ok" if not self.reasons else "warning"

    @property
    def health_label(self) -> str:
        return HEALTH_LABELS[self.health]

    @property
    def upstream_labels(self) -> list[tuple[str, str, int]]:
        return upstream_status_counts(self.upstream)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _connection_reasons(
    connector: Connector, connections: list[tuple[int | None, str, str]], *, own: bool
) -> list[str]:
    """What the connector's upstream connections need: (user id or None, status, last error)."""
    if not connector_holds_upstream(connector):
        return []
    title = get_kind(connector.kind).title
    reasons = []
    if connector.mode == Connector.Mode.SHARED:
        shared = next(((s, e) for u, s, e in connections if u is None), None)
        if shared is None or shared[0] == Status.REVOKED:
            reasons.append(f"Shared {title} not connected")
        elif shared[0] == Status.NEEDS_REAUTH:
            reasons.append(f"Shared {title} must be reconnected")
        elif shared[0] == Status.ERROR:
            reasons.append(
                f"Shared {title} connection failing, retrying"
                + (f" ({shared[1][:120]})" if shared[1] else "")
            )
        return reasons
    members = [(s, e) for u, s, e in connections if u is not None]
    reauth = sum(1 for s, _e in members if s == Status.NEEDS_REAUTH)
    failing = [e for s, e in members if s == Status.ERROR]
    if own:
        if reauth:
            reasons.append(f"Your {title} must be reconnected")
        if failing:
            reasons.append(f"Your {title} connection is failing, retrying")
        return reasons
    if reauth:
        reasons.append(_plural(reauth, "member must", "members must") + " reconnect")
    if failing:
        reasons.append(
            _plural(len(failing), "member's connection", "members' connections")
            + " failing, retrying"
            + (f" ({failing[0][:120]})" if failing[0] else "")
        )
    return reasons


def _fault_reasons(faults: dict[str, Faults]) -> list[str]:
    reasons = []
    for cause, name in (("upstream", "Upstream errors"), ("connector", "Connector errors")):
        found = faults.get(cause)
        if found is not None:
            reason = f"{name}: {found.count} in the last hour"
            reasons.append(reason + (f" ({found.latest})" if found.latest else ""))
    return reasons


def connector_stats(connectors: list[Connector], *, user=None) -> dict[int, ConnectorStats]:
    """Health of each connector; with ``user`` (a member), only their own connections, clients
    and calls count (and the shared connection)."""
    ids = [c.pk for c in connectors]
    stats = {c.pk: ConnectorStats(connector_id=c.pk, enabled=c.enabled) for c in connectors}
    connections = UpstreamConnection.objects.filter(connector_id__in=ids)
    if user is not None:
        connections = connections.filter(Q(user=user) | Q(user__isnull=True))
    for row in connections.values("connector_id", "status").annotate(n=Count("id")):
        stats[row["connector_id"]].upstream[row["status"]] = row["n"]
    for row in connections.values("connector_id").annotate(last=Max("last_refresh_at")):
        stats[row["connector_id"]].last_refresh_at = row["last"]
    states: dict[int, list[tuple[int | None, str, str]]] = {c: [] for c in ids}
    for connector_id, user_id, status, error in connections.values_list(
        "connector_id", "user_id", "status", "last_error"
    ):
        states[connector_id].append((user_id, status, error))

    clients = clients_connected_counts(ids, user_id=user.pk if user is not None else None)
    for connector_id, n in clients.items():
        stats[connector_id].clients_connected = n

    now = timezone.now()
    since = now - STATS_WINDOW
    calls = (
        calls_and_errors(ids, since)
        if user is None
        else own_calls_and_errors(ids, user=user, since=since)
    )
    for connector_id, (n, errors) in calls.items():
        stats[connector_id].calls_24h = n
        stats[connector_id].errors_24h = errors
    faults = recent_faults(ids, now - FAULT_WINDOW, user=user)
    for connector in connectors:
        if not connector.enabled:
            continue
        try:
            get_kind(connector.kind)
        except KeyError:
            stats[connector.pk].reasons.append(
                f"Its kind ({connector.kind}) is not installed on this server"
            )
            continue
        stats[connector.pk].reasons += _connection_reasons(
            connector, states[connector.pk], own=user is not None
        )
        stats[connector.pk].reasons += _fault_reasons(faults.get(connector.pk, {}))
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
        summary.reasons += [f"{connector.display_name}: {reason}" for reason in stats.reasons]
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
