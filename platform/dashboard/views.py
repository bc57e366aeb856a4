"""Server-rendered dashboard pages (for now: a tenant admin connects the shared account)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from authserver.upstream_hop import upstream_hop_start
from connectors.base import get_kind
from tenants.models import Connector, Membership
from upstream.models import UpstreamConnection
from upstream.services import upstream_connection_disconnect, upstream_connection_for


def connector_for(user, connector_id: int, *, admin: bool) -> Connector:
    """The connector if ``user`` may act on it (an operator, or a member / admin of its
    tenant); 404 for anyone else, so outsiders cannot tell which connectors exist."""
    connector = Connector.objects.select_related("tenant").filter(pk=connector_id).first()
    if connector is None:
        raise Http404("no such connector")
    if user.is_superuser:
        return connector
    memberships = Membership.objects.filter(user=user, tenant_id=connector.tenant_id)
    if admin:
        memberships = memberships.filter(role=Membership.Role.ADMIN)
    if not memberships.exists():
        raise Http404("no such connector")
    return connector


@login_required
@require_http_methods(["GET", "POST"])
def connector_connect(request, connector_id: int):
    """One button: connect (or reconnect) the upstream account: the tenant's shared one (admins)
    or, in per-user mode, the signed-in member's own."""
    shared = Connector.objects.filter(pk=connector_id, mode=Connector.Mode.SHARED).exists()
    connector = connector_for(request.user, connector_id, admin=shared)
    kind = get_kind(connector.kind)
    if kind.upstream is None:
        raise Http404("this connector has no upstream account")
    if request.method == "POST":
        return upstream_hop_start(request, connector=connector, pending=None)
    return render(
        request,
        "dashboard/connector_connect.html",
        {
            "connector": connector,
            "kind": kind,
            "shared": shared,
            "connection": upstream_connection_for(connector=connector, user_id=request.user.pk),
        },
    )


@login_required
@require_http_methods(["POST"])
def connection_disconnect(request, connection_id: int):
    """Disconnect an upstream connection: its own member, or an admin of the tenant."""
    connection = (
        UpstreamConnection.objects.select_related("connector__tenant")
        .filter(pk=connection_id)
        .first()
    )
    if connection is None:
        raise Http404("no such connection")
    if connection.user_id != request.user.pk:
        connector_for(request.user, connection.connector_id, admin=True)  # 404 for others
    upstream_connection_disconnect(connection_id=connection.pk, actor=request.user)
    kind = get_kind(connection.connector.kind)
    return render(
        request,
        "authserver/message.html",
        {
            "title": f"{kind.title} disconnected",
            "message": f"The {kind.title} connection of {connection.connector.display_name} is "
            "revoked, at the provider too, and the clients that used it are signed out.",
        },
    )
