"""Writes on tenants, memberships and connectors (used by the CLI, dashboard and API)."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from connectors.base import SettingsError, get_kind
from tenants.models import Connector, Membership, Tenant, slug_validator
from upstream import crypto


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
    slug = slug or kind
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
