"""Who may see and manage what: the one place views and the API load a tenant's objects.

An operator (superuser) may do everything; a tenant admin manages their tenant; a member sees
the tenant's connectors and their own connections and clients. Anyone else gets 404 for a
tenant's objects, so an outsider cannot tell which tenants and connectors exist; a member who
asks for an admin-only action gets 403.
"""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from tenants.models import Connector, Membership, Tenant

OPERATOR = "operator"
ADMIN = Membership.Role.ADMIN.value
MEMBER = Membership.Role.MEMBER.value


@dataclass(frozen=True)
class TenantAccess:
    tenant: Tenant
    role: str  # operator, admin or member

    @property
    def manages(self) -> bool:
        return self.role in (OPERATOR, ADMIN)


@dataclass(frozen=True)
class ConnectorAccess:
    connector: Connector
    role: str

    @property
    def manages(self) -> bool:
        return self.role in (OPERATOR, ADMIN)

    @property
    def tenant(self) -> Tenant:
        return self.connector.tenant


def role_in_tenant(user, tenant_id: int) -> str | None:
    """operator, admin, member, or None for an outsider (and for anonymous users)."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return OPERATOR
    return (
        Membership.objects.filter(user=user, tenant_id=tenant_id)
        .values_list("role", flat=True)
        .first()
    )


def _checked(role: str | None, *, admin: bool, what: str) -> str:
    if role is None:
        raise Http404(f"no such {what}")
    if admin and role == MEMBER:
        raise PermissionDenied(f"only the tenant's admins may change this {what}")
    return role


def tenants_visible_to(user) -> QuerySet[Tenant]:
    """Every tenant for an operator; the user's own tenants for everyone else."""
    if not user.is_authenticated:
        return Tenant.objects.none()
    tenants = Tenant.objects.all()
    if not user.is_superuser:
        tenants = tenants.filter(memberships__user=user)
    return tenants.order_by("slug")


def tenant_access(user, slug: str, *, admin: bool = False) -> TenantAccess:
    """The tenant ``slug`` and the user's role in it; 404 for outsiders, 403 for a member
    when ``admin`` is asked."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise Http404("no such tenant")
    role = _checked(role_in_tenant(user, tenant.pk), admin=admin, what="tenant")
    return TenantAccess(tenant=tenant, role=role)


def connector_access(user, connector_id: int, *, admin: bool = False) -> ConnectorAccess:
    """The connector and the user's role in its tenant; 404 for outsiders, 403 for a member
    when ``admin`` is asked."""
    connector = Connector.objects.select_related("tenant").filter(pk=connector_id).first()
    if connector is None:
        raise Http404("no such connector")
    role = _checked(role_in_tenant(user, connector.tenant_id), admin=admin, what="connector")
    return ConnectorAccess(connector=connector, role=role)


def connector_for(user, connector_id: int, *, admin: bool) -> Connector:
    """The connector if ``user`` may act on it (an operator, or a member / admin of its
    tenant); 404 for anyone else, members asking for admin actions included."""
    try:
        return connector_access(user, connector_id, admin=admin).connector
    except PermissionDenied:
        raise Http404("no such connector") from None


def connectors_visible_to(user) -> QuerySet[Connector]:
    return (
        Connector.objects.select_related("tenant")
        .filter(tenant__in=tenants_visible_to(user))
        .order_by("tenant__slug", "slug")
    )
