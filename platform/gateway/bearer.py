"""The bearer check of an MCP request: one database round trip for token, connector and member."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Subquery
from oauth2_provider.models import AccessToken

from tenants.models import Connector, Membership


@dataclass(frozen=True)
class BearerCheck:
    """What the gateway needs to decide on a request, read in one query."""

    connector_id: int
    connector_kind: str
    connector_enabled: bool
    connector_mode: str
    connector_settings: dict
    tool_policy: dict
    connector_audit_arguments: str
    tenant_id: int
    tenant_enabled: bool
    token_id: int | None
    token_expires: datetime | None
    token_connector_id: int | None  # the connector the token was issued for
    token_scope: str | None
    token_user_id: int | None
    token_client_id: str | None
    user_active: bool | None
    username: str | None
    member_role: str | None


def bearer_check(tenant_slug: str, connector_slug: str, token: str | None) -> BearerCheck | None:
    """Look up the connector and, when given, the token and its user's membership.

    Returns None when the connector does not exist.
    """
    checksum = hashlib.sha256(token.encode()).hexdigest() if token else ""
    tokens = AccessToken.objects.filter(token_checksum=checksum)
    token_user = Subquery(tokens.values("user_id")[:1])
    users = get_user_model().objects.filter(pk=token_user)
    row = (
        Connector.objects.filter(tenant__slug=tenant_slug, slug=connector_slug)
        .annotate(
            token_id=Subquery(tokens.values("pk")[:1]),
            token_expires=Subquery(tokens.values("expires")[:1]),
            token_connector_id=Subquery(tokens.values("audience__connector_id")[:1]),
            token_scope=Subquery(tokens.values("scope")[:1]),
            token_user_id=token_user,
            token_client_id=Subquery(tokens.values("application__client_id")[:1]),
            user_active=Subquery(users.values("is_active")[:1]),
            username=Subquery(users.values("username")[:1]),
            member_role=Subquery(
                Membership.objects.filter(
                    tenant_id=OuterRef("tenant_id"), user_id=token_user
                ).values("role")[:1]
            ),
        )
        .values(
            "pk",
            "kind",
            "enabled",
            "mode",
            "settings",
            "tool_policy",
            "audit_arguments",
            "tenant_id",
            "tenant__enabled",
            "token_id",
            "token_expires",
            "token_connector_id",
            "token_scope",
            "token_user_id",
            "token_client_id",
            "user_active",
            "username",
            "member_role",
        )
        .first()
    )
    if row is None:
        return None
    return BearerCheck(
        connector_id=row["pk"],
        connector_kind=row["kind"],
        connector_enabled=row["enabled"],
        connector_mode=row["mode"],
        connector_settings=row["settings"],
        tool_policy=row["tool_policy"] or {},
        connector_audit_arguments=row["audit_arguments"],
        tenant_id=row["tenant_id"],
        tenant_enabled=row["tenant__enabled"],
        token_id=row["token_id"],
        token_expires=row["token_expires"],
        token_connector_id=row["token_connector_id"],
        token_scope=row["token_scope"],
        token_user_id=row["token_user_id"],
        token_client_id=row["token_client_id"],
        user_active=row["user_active"],
        username=row["username"],
        member_role=row["member_role"],
    )
