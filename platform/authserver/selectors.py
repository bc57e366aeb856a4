"""Reads on MCP clients and their tokens, matched to connectors by their audience rows."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import F, Max, Min
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken

from events.models import Event
from tenants.models import Connector


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


def clients_connected_counts(
    connector_ids: list[int], *, user_id: int | None = None
) -> dict[int, int]:
    """How many clients hold live tokens for each connector (with ``user_id``: that user's)."""
    clients: dict[int, set[int]] = defaultdict(set)
    for _kind, tokens in _live_tokens(connector_ids, user_id=user_id):
        for connector_id, application_id in tokens.values_list(
            "connector_id", "application_id"
        ).distinct():
            clients[connector_id].add(application_id)
    return {connector_id: len(apps) for connector_id, apps in clients.items()}


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
