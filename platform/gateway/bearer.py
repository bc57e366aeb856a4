"""The bearer check of an MCP request: one database round trip for token, connector and member.

The query is built with the ORM once per process and compiled to SQL with placeholders; each
request only runs that SQL with its own three parameters (building and compiling the
nine-subquery query cost about half of a request's CPU). Nothing is cached but the SQL text:
every request reads the token, its audience, the user, the membership and the connector anew,
so a revocation, a disconnect, a removed member or a disabled connector bites on the very next
request, in every process.
"""

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery
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


def _query(checksum: str, tenant_slug: str, connector_slug: str) -> QuerySet:
    """The connector and, when given, the token and its user's membership, as one query."""
    tokens = AccessToken.objects.filter(token_checksum=checksum)
    token_user = Subquery(tokens.values("user_id")[:1])
    users = get_user_model().objects.filter(pk=token_user)
    return (
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
        .order_by("pk")[:1]
    )


# Stand-ins for the three parameters while the query is compiled; replaced per request.
_PARAMETERS = ("(bearer checksum)", "(bearer tenant)", "(bearer connector)")


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple  # the compiled parameters; _PARAMETERS' stand-ins at the request's slots
    slots: tuple[int | None, ...]  # per parameter: which of the request's values, or None
    names: tuple[str, ...]  # the selected columns' names, in order
    converters: dict  # column position -> (the backend's and fields' converters, expression)


@functools.cache
def _compiled(vendor: str) -> _Compiled:
    """``_query`` compiled once per process (per database backend)."""
    query = _query(*_PARAMETERS).query
    compiler = query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    slots = tuple(_PARAMETERS.index(p) if p in _PARAMETERS else None for p in params)
    if {s for s in slots if s is not None} != {0, 1, 2}:
        raise RuntimeError("the bearer-check query lost a parameter when compiled")
    expressions = [column[0] for column in compiler.select[: compiler.col_count]]
    return _Compiled(
        sql=sql,
        params=tuple(params),
        slots=slots,
        names=(*query.extra_select, *query.values_select, *query.annotation_select),
        converters=compiler.get_converters(expressions),
    )


def bearer_check(tenant_slug: str, connector_slug: str, token: str | None) -> BearerCheck | None:
    """Look up the connector and, when given, the token and its user's membership.

    Returns None when the connector does not exist.
    """
    checksum = hashlib.sha256(token.encode()).hexdigest() if token else ""
    compiled = _compiled(connection.vendor)
    values = (checksum, tenant_slug, connector_slug)
    params = [p if s is None else values[s] for p, s in zip(compiled.params, compiled.slots)]
    with connection.cursor() as cursor:
        cursor.execute(compiled.sql, params)
        found = cursor.fetchone()
    if found is None:
        return None
    found = list(found)
    for position, (converters, expression) in compiled.converters.items():
        for convert in converters:
            found[position] = convert(found[position], expression, connection)
    row = dict(zip(compiled.names, found, strict=True))
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
