"""Reads behind the dashboard and the management API: health at a glance, clients, members.

MCP tokens are matched to connectors by their audience rows (``authserver.TokenAudience``).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Count, F, Max, Min, Q, QuerySet
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken

from events.models import Event
from tenants.models import Connector, Membership, Tenant
from upstream.models import UpstreamConnection

CALL_KINDS = ("mcp.first_call", "mcp.call")
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


@dataclass
class TokenInfo:
    id: int
    kind: str  # access or refresh
    user_id: int | None
    username: str
    created: datetime
    expires: datetime | None
    live: bool


@dataclass
class ClientInfo:
    """A client (DOT application) with tokens for one connector."""

    application_id: int
    client_id: str
    name: str
    redirect_hosts: list[str]
    registration: str  # dcr, cimd or manual
    users: list[str]
    first_use: datetime | None
    last_use: datetime | None
    tokens: list[TokenInfo]


def _live_tokens(connector_ids: list[int], *, user_id: int | None = None):
    """(kind, queryset) of live MCP tokens of these connectors, by their audience rows:
    access tokens not yet expired and refresh tokens neither revoked nor too old to use.
    Each row carries ``connector_id``."""
    now = timezone.now()
    access = AccessToken.objects.filter(audience__connector_id__in=connector_ids, expires__gt=now)
    refresh = RefreshToken.objects.filter(
        audience__connector_id__in=connector_ids,
        revoked__isnull=True,
        created__gt=now - timedelta(seconds=settings.REFRESH_TOKEN_LIFETIME),
    )
    if user_id is not None:
        access = access.filter(user_id=user_id)
        refresh = refresh.filter(user_id=user_id)
    connector_id = F("audience__connector_id")
    return (
        ("access", access.annotate(connector_id=connector_id)),
        ("refresh", refresh.annotate(connector_id=connector_id)),
    )


def _calls_and_errors(connector_ids: list[int], since: datetime) -> dict[int, tuple[int, int]]:
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

    clients: dict[int, set[int]] = defaultdict(set)
    for _kind, tokens in _live_tokens(ids, user_id=user.pk if user is not None else None):
        for connector_id, application_id in tokens.values_list(
            "connector_id", "application_id"
        ).distinct():
            clients[connector_id].add(application_id)
    for connector_id, apps in clients.items():
        stats[connector_id].clients_connected = len(apps)

    if user is None:
        calls = _calls_and_errors(ids, timezone.now() - STATS_WINDOW)
        for connector_id, (n, errors) in calls.items():
            stats[connector_id].calls_24h = n
            stats[connector_id].errors_24h = errors
    else:
        # A member's own calls: individual events only carry a user; the aggregates do not.
        own = Event.objects.filter(
            connector_id__in=ids, user=user, created__gte=timezone.now() - STATS_WINDOW
        )
        for row in (
            own.filter(kind__in=(*CALL_KINDS, "mcp.rejected"))
            .values("connector_id")
            .annotate(n=Count("id"), errors=Count("id", filter=~Q(outcome=Event.Outcome.OK)))
        ):
            stats[row["connector_id"]].calls_24h = row["n"]
            stats[row["connector_id"]].errors_24h = row["errors"]
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


def connected_clients(connector: Connector, *, user=None) -> list[ClientInfo]:
    """Clients holding live tokens for the connector (with ``user``: only that user's)."""
    per_app: dict[int, list[TokenInfo]] = defaultdict(list)
    for kind, tokens in _live_tokens([connector.pk], user_id=user.pk if user is not None else None):
        for row in tokens.select_related("user"):
            per_app[row.application_id].append(
                TokenInfo(
                    id=row.pk,
                    kind=kind,
                    user_id=row.user_id,
                    username=row.user.username if row.user else "",
                    created=row.created,
                    expires=row.expires if kind == "access" else None,
                    live=True,
                )
            )
    if not per_app:
        return []
    applications = Application.objects.in_bulk(list(per_app))
    client_ids = [a.client_id for a in applications.values()]
    uses = {
        row["client_id"]: (row["first"], row["last"])
        for row in Event.objects.filter(connector=connector, client_id__in=client_ids)
        .values("client_id")
        .annotate(first=Min("created"), last=Max("created"))
    }
    result = []
    for application_id, tokens in per_app.items():
        app = applications.get(application_id)
        if app is None:
            continue
        first, last = uses.get(app.client_id, (None, None))
        first = first or min(t.created for t in tokens)
        result.append(
            ClientInfo(
                application_id=app.pk,
                client_id=app.client_id,
                name=app.name or "unnamed client",
                redirect_hosts=sorted(
                    {urlsplit(u).netloc or u for u in (app.redirect_uris or "").split() if u}
                ),
                registration=_registration_of(app),
                users=sorted({t.username for t in tokens if t.username}),
                first_use=first,
                last_use=last or max(t.created for t in tokens),
                tokens=sorted(tokens, key=lambda t: t.created, reverse=True),
            )
        )
    return sorted(result, key=lambda c: c.last_use or c.first_use, reverse=True)


def _registration_of(app: Application) -> str:
    if app.client_id.startswith("https://"):
        return "cimd"
    source = getattr(app, "registration_source", "") or ""
    return "dcr" if "dcr" in str(source).lower() else (str(source).lower() or "manual")


def upstream_connections_of(connector: Connector, *, user=None) -> QuerySet[UpstreamConnection]:
    """The connector's upstream connections (with ``user``: the shared one and their own)."""
    connections = UpstreamConnection.objects.select_related("user", "connected_by").filter(
        connector=connector
    )
    if user is not None:
        connections = connections.filter(Q(user=user) | Q(user__isnull=True))
    return connections.order_by("user__username")


def members_of(tenant: Tenant) -> QuerySet[Membership]:
    return (
        Membership.objects.select_related("user").filter(tenant=tenant).order_by("user__username")
    )


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


def upstream_status_counts(stats_upstream: dict[str, int]) -> list[tuple[str, str, int]]:
    """(status, label, count) in the state machine's order, for badges."""
    labels = dict(UpstreamConnection.Status.choices)
    return [(s, labels[s], stats_upstream[s]) for s in labels if stats_upstream.get(s)]


def event_kinds(connector: Connector) -> list[str]:
    """The kinds a trace filter offers: every kind the platform records, and any other this
    connector has seen."""
    from dashboard.trace import KNOWN_KINDS

    seen = set(
        Event.objects.filter(connector=connector).values_list("kind", flat=True).distinct()[:200]
    )
    return sorted(set(KNOWN_KINDS) | seen)
