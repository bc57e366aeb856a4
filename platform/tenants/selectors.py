"""Reads every view uses to find tenant objects a user may see."""

import re

from django.conf import settings
from django.db.models import QuerySet

from connectors.base import get_kind
from tenants.models import Connector, Invitation, Membership, Tenant

_CONNECTOR_PATH = re.compile(r"^/t/(?P<tenant>[a-z0-9-]+)/(?P<connector>[a-z0-9-]+)/mcp$")
_ANY_ORIGIN = re.compile(r"^https?://[^/?#]+")


def connector_from_url(url: str) -> Connector | None:
    """The connector whose URL is exactly ``url`` (the RFC 8707 resource), or None."""
    if not url.startswith(settings.PUBLIC_URL + "/"):
        return None
    match = _CONNECTOR_PATH.match(url[len(settings.PUBLIC_URL) :])
    if not match:
        return None
    return (
        Connector.objects.select_related("tenant")
        .filter(tenant__slug=match["tenant"], slug=match["connector"])
        .first()
    )


def connector_id_from_resource(resource) -> int | None:
    """The connector a stored token ``resource`` (a one-URL list) names, under any origin:
    a fallback for tokens issued before audience rows existed, which may predate a change of
    PUBLIC_URL. Only for values the platform wrote itself, never for client input."""
    if not isinstance(resource, list) or len(resource) != 1 or not isinstance(resource[0], str):
        return None
    origin = _ANY_ORIGIN.match(resource[0])
    match = origin and _CONNECTOR_PATH.match(resource[0][origin.end() :])
    if not match:
        return None
    return (
        Connector.objects.filter(tenant__slug=match["tenant"], slug=match["connector"])
        .values_list("pk", flat=True)
        .first()
    )


def connector_holds_upstream(connector: Connector) -> bool:
    """Whether a member needs an upstream connection to use ``connector`` (its kind holds OAuth
    tokens at a provider, or a secret per member): then ``/authorize`` goes through the upstream
    hop. A kind may hold none for some connectors (``remote_mcp`` without auth)."""
    upstream = get_kind(connector.kind).upstream
    return upstream is not None and upstream.connects(connector.settings, connector.mode)


def membership_for(*, user, tenant_id: int) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, tenant_id=tenant_id).first()


def connectors_usable_by(user) -> list[Connector]:
    """Enabled connectors of enabled tenants the user is a member of."""
    return list(
        Connector.objects.select_related("tenant")
        .filter(
            tenant__memberships__user=user,
            enabled=True,
            tenant__enabled=True,
        )
        .order_by("tenant__slug", "slug")
    )


def members_of(tenant: Tenant) -> QuerySet[Membership]:
    """The tenant's memberships with their users, by username."""
    return (
        Membership.objects.select_related("user").filter(tenant=tenant).order_by("user__username")
    )


def invitations_pending(tenant: Tenant) -> QuerySet[Invitation]:
    """Invitations not accepted yet (expired ones too: an admin resends or revokes them)."""
    return Invitation.objects.filter(tenant=tenant, accepted__isnull=True).order_by("email")
