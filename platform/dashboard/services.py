"""Writes the dashboard and the management API share: tenants, connectors, members, clients.

Creating tenants and connectors lives in ``tenants.services`` (the CLI uses it too); what is
here is what only people with a browser or an API key do.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from authserver.services import mcp_tokens_revoke
from tenants.models import Connector, Membership, Tenant
from tenants.services import TenantError, connector_settings_clean

User = get_user_model()


def tenant_update(
    *, tenant: Tenant, name: str | None = None, enabled: bool | None = None
) -> Tenant:
    """Rename a tenant or turn it on and off (a disabled tenant's clients get 403)."""
    fields = []
    if name is not None:
        name = name.strip()
        if not name:
            raise TenantError("a tenant needs a name")
        tenant.name = name[:200]
        fields.append("name")
    if enabled is not None:
        tenant.enabled = enabled
        fields.append("enabled")
    if fields:
        tenant.save(update_fields=fields)
    return tenant


def connector_update(
    *,
    connector: Connector,
    name: str | None = None,
    enabled: bool | None = None,
    mode: str | None = None,
    settings: dict | None = None,
) -> Connector:
    """Rename, enable or disable, switch mode, or change the kind's settings of a connector."""
    fields = []
    if name is not None:
        name = name.strip()
        if not name:
            raise TenantError("a connector needs a name")
        connector.name = name[:200]
        fields.append("name")
    if enabled is not None:
        connector.enabled = enabled
        fields.append("enabled")
    if mode is not None:
        if mode not in Connector.Mode.values:
            raise TenantError(f"unknown mode {mode!r}: use per_user or shared")
        connector.mode = mode
        fields.append("mode")
    if settings is not None:
        connector.settings = connector_settings_clean(
            kind=connector.kind, settings_in=settings, current=connector.settings
        )
        fields.append("settings")
    if fields:
        connector.save(update_fields=fields)
    return connector


def _username_from_email(email: str) -> str:
    base = "".join(c for c in email.split("@")[0].lower() if c.isalnum() or c in "._-")[:30]
    base = base or "member"
    candidate, n = base, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        candidate = f"{base}{n}"
    return candidate


def set_password_url(user) -> str:
    """A one-time link where ``user`` chooses a password (Django's reset token: it stops
    working once the password changes, and after PASSWORD_RESET_TIMEOUT)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return f"{settings.PUBLIC_URL}/accounts/set-password/{uid}/{token}/"


def member_invite(
    *, tenant: Tenant, email: str, role: str = Membership.Role.MEMBER, invited_by=None
) -> tuple[Membership, str]:
    """Add the person with ``email`` to the tenant (creating their account) and email them;
    returns the membership and the set-password link ("" for an account that has one)."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise TenantError("enter a valid email address")
    if role not in Membership.Role.values:
        raise TenantError(f"unknown role {role!r}: use admin or member")
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).order_by("pk").first()
        if user is None:
            user = User(username=_username_from_email(email), email=email)
            user.set_unusable_password()
            user.save()
        if Membership.objects.filter(tenant=tenant, user=user).exists():
            raise TenantError(f"{email} is already a member of {tenant.name}")
        membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    link = "" if user.has_usable_password() else set_password_url(user)
    inviter = invited_by.username if invited_by else "An operator"
    body = f"{inviter} added you to {tenant.name} on {settings.PUBLIC_URL} as {role}.\n\n" + (
        f"Choose your password here (your username is {user.username}):\n{link}\n"
        if link
        else f"Sign in as {user.username} at {settings.PUBLIC_URL}/dashboard/\n"
    )
    send_mail(
        subject=f"You are invited to {tenant.name}",
        message=body,
        from_email=None,
        recipient_list=[email],
    )
    return membership, link


def _other_admins(membership: Membership) -> bool:
    return (
        Membership.objects.filter(tenant_id=membership.tenant_id, role=Membership.Role.ADMIN)
        .exclude(pk=membership.pk)
        .exists()
    )


def member_role_change(*, membership: Membership, role: str) -> Membership:
    """Make a member an admin or back; the tenant keeps at least one admin."""
    if role not in Membership.Role.values:
        raise TenantError(f"unknown role {role!r}: use admin or member")
    if (
        membership.role == Membership.Role.ADMIN
        and role != Membership.Role.ADMIN
        and not _other_admins(membership)
    ):
        raise TenantError("a tenant keeps at least one admin: make someone else admin first")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def member_remove(*, membership: Membership) -> int:
    """End a membership: the member's MCP tokens for the tenant's connectors and consents end
    with it (their per-user upstream connections end by the membership's delete signal);
    returns how many MCP tokens were revoked."""
    if membership.role == Membership.Role.ADMIN and not _other_admins(membership):
        raise TenantError("a tenant keeps at least one admin: make someone else admin first")
    revoked = 0
    with transaction.atomic():
        for connector in Connector.objects.filter(tenant_id=membership.tenant_id):
            revoked += mcp_tokens_revoke(
                connector_id=connector.pk, user_id=membership.user_id, forget_consents=True
            )
        membership.delete()
    return revoked
