"""Server-rendered dashboard pages (for now: a tenant admin connects the shared account)."""

from authserver.upstream_hop import upstream_hop_start
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from tenants.models import Connector, Membership
from upstream.services import upstream_connection_for

from connectors.base import get_kind


def connector_for_admin(user, connector_id: int) -> Connector:
    """The connector if ``user`` is an operator or an admin of its tenant; 404 for anyone else."""
    connector = Connector.objects.select_related("tenant").filter(pk=connector_id).first()
    if connector is None:
        raise Http404("no such connector")
    if user.is_superuser:
        return connector
    if not Membership.objects.filter(
        user=user, tenant_id=connector.tenant_id, role=Membership.Role.ADMIN
    ).exists():
        raise Http404("no such connector")
    return connector


@login_required
@require_http_methods(["GET", "POST"])
def connector_connect(request, connector_id: int):
    """One button: connect (or reconnect) the tenant's shared upstream account."""
    connector = connector_for_admin(request.user, connector_id)
    kind = get_kind(connector.kind)
    if kind.upstream is None or connector.mode != Connector.Mode.SHARED:
        raise Http404("this connector has no shared upstream account")
    if request.method == "POST":
        return upstream_hop_start(request, connector=connector, pending=None)
    return render(
        request,
        "dashboard/connector_connect.html",
        {
            "connector": connector,
            "kind": kind,
            "connection": upstream_connection_for(connector=connector, user_id=None),
        },
    )
