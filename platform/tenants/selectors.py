"""Reads every view uses to find tenant objects a user may see."""

import re

from django.conf import settings

from tenants.models import Connector, Membership

_CONNECTOR_PATH = re.compile(r"^/t/(?P<tenant>[a-z0-9-]+)/(?P<connector>[a-z0-9-]+)/mcp$")


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
