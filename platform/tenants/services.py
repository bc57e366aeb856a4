"""Writes on tenants, memberships and connectors (used by the CLI, dashboard and API)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from config import crypto
from connectors.base import SettingsError, get_kind
from tenants.models import Connector, Membership, Tenant, slug_validator


class TenantError(ValueError):
    """Bad input for a tenant operation; the message is shown to the operator as is."""


def _check_slug(slug: str, what: str) -> None:
    try:
        slug_validator(slug)
    except ValidationError as exc:
        raise TenantError(f"invalid {what} slug {slug!r}: {exc.messages[0]}") from exc


def tenant_get(*, slug: str) -> Tenant:
    try:
        return Tenant.objects.get(slug=slug)
    except Tenant.DoesNotExist:
        raise TenantError(f"unknown tenant {slug!r}") from None


def tenant_create(*, slug: str, name: str = "") -> Tenant:
    """Create a tenant; the slug becomes part of every connector URL."""
    _check_slug(slug, "tenant")
    try:
        with transaction.atomic():
            return Tenant.objects.create(slug=slug, name=name or slug)
    except IntegrityError:
        raise TenantError(f"tenant {slug!r} already exists") from None


def member_add(
    *,
    tenant: Tenant,
    username: str,
    role: str = Membership.Role.MEMBER,
    password: str | None = None,
    email: str = "",
) -> Membership:
    """Add (or re-role) a member, creating the user when missing."""
    if role not in Membership.Role.values:
        raise TenantError(f"unknown role {role!r}: use admin or member")
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        if created and not password:
            user.set_unusable_password()
        if password:
            user.set_password(password)
        if email and user.email != email:
            user.email = email
        user.save()
        membership, _ = Membership.objects.update_or_create(
            tenant=tenant, user=user, defaults={"role": role}
        )
    return membership


def connector_settings_clean(*, kind: str, settings_in: dict, current: dict | None = None) -> dict:
    """The settings to store: ``settings_in`` over ``current``, checked by the kind's schema.

    Unknown keys and wrong values are refused (TenantError naming each); secrets are sealed."""
    try:
        return get_kind(kind).settings_schema.clean(
            settings_in, current=current, seal=crypto.encrypt
        )
    except SettingsError as exc:
        raise TenantError(f"invalid settings for a {kind} connector: {exc}") from None


def connector_create(
    *,
    tenant: Tenant,
    kind: str,
    slug: str = "",
    mode: str = Connector.Mode.PER_USER,
    name: str = "",
    settings: dict | None = None,
) -> Connector:
    """Create a connector of a registered kind in a tenant."""
    try:
        connector_kind = get_kind(kind)
    except KeyError as exc:
        raise TenantError(str(exc.args[0])) from None
    slug = slug or kind.replace("_", "-")  # a kind slug may hold "_", a URL slug not
    _check_slug(slug, "connector")
    if mode not in Connector.Mode.values:
        raise TenantError(f"unknown mode {mode!r}: use per_user or shared")
    cleaned = connector_settings_clean(kind=kind, settings_in=settings or {})
    try:
        with transaction.atomic():
            return Connector.objects.create(
                tenant=tenant,
                kind=kind,
                slug=slug,
                mode=mode,
                name=name or connector_kind.title,
                settings=cleaned,
            )
    except IntegrityError:
        raise TenantError(f"connector {slug!r} already exists in tenant {tenant.slug!r}") from None


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


def member_remove(*, membership: Membership) -> None:
    """End a membership; the tenant keeps at least one admin. The member's MCP tokens and
    consents for the tenant's connectors, and their per-user upstream connections, end by the
    membership's delete signal (``authserver.signals``, ``upstream.signals``), however the
    membership goes."""
    if membership.role == Membership.Role.ADMIN and not _other_admins(membership):
        raise TenantError("a tenant keeps at least one admin: make someone else admin first")
    membership.delete()
