"""Writes on tenants, memberships and connectors (used by the CLI, dashboard and API)."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from config import crypto
from connectors.base import SettingsError, get_kind
from tenants.models import Connector, Invitation, Membership, Tenant, slug_validator
from tenants.policy import tool_policy_clean

User = get_user_model()
username_validator = UnicodeUsernameValidator()


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


def _check_name(name: str | None, what: str) -> None:
    limit = Tenant._meta.get_field("name").max_length
    if name is not None and len(name) > limit:
        raise TenantError(f"a {what} name has at most {limit} characters")


def tenant_create(*, slug: str, name: str = "") -> Tenant:
    """Create a tenant; the slug becomes part of every connector URL."""
    _check_slug(slug, "tenant")
    _check_name(name, "tenant")
    try:
        with transaction.atomic():
            return Tenant.objects.create(slug=slug, name=name or slug)
    except IntegrityError:
        raise TenantError(f"tenant {slug!r} already exists") from None


def _check_password(password: str, user) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise TenantError(" ".join(exc.messages)) from None


def member_add(
    *,
    tenant: Tenant,
    username: str,
    role: str | None = None,
    password: str | None = None,
    email: str = "",
    update: bool = False,
) -> Membership:
    """Add a user to a tenant, creating the user when missing (the operator's path; people
    invite by email instead). An existing user's password, email and existing role change only
    with ``update`` (and a tenant keeps an admin); input follows the dashboard's rules."""
    if role is not None and role not in Membership.Role.values:
        raise TenantError(f"unknown role {role!r}: use admin or member")
    try:
        username_validator(username)
    except ValidationError as exc:
        raise TenantError(f"invalid username {username!r}: {exc.messages[0]}") from None
    if len(username) > 150:
        raise TenantError("a username has at most 150 characters")
    email = _clean_email(email) if email else ""
    with transaction.atomic():
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username, email=email)
            if password:
                _check_password(password, user)
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
        else:
            changes = [
                what
                for what, changed in (
                    ("password", bool(password)),
                    ("email", bool(email) and user.email.lower() != email),
                )
                if changed
            ]
            if changes and not update:
                raise TenantError(
                    f"user {username!r} exists: pass --update to change their "
                    + " and ".join(changes)
                )
            if password:
                _check_password(password, user)
                user.set_password(password)
            if email:
                user.email = email
            user.save()
        membership = Membership.objects.filter(tenant=tenant, user=user).first()
        if membership is None:
            return Membership.objects.create(
                tenant=tenant, user=user, role=role or Membership.Role.MEMBER
            )
        if role and role != membership.role:
            if not update:
                raise TenantError(
                    f"{username} is already {membership.role} of {tenant.slug}: "
                    "pass --update to change their role"
                )
            member_role_change(membership=membership, role=role)
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
    _check_name(name, "connector")
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
    tool_policy: dict | None = None,
    audit_arguments: str | None = None,
) -> Connector:
    """Rename, enable or disable, switch mode, change the kind's settings, the tool policy
    (tenants.policy) or how the audit log keeps arguments."""
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
    if tool_policy is not None:
        try:
            connector.tool_policy = tool_policy_clean(tool_policy)
        except SettingsError as exc:
            raise TenantError(f"invalid tool policy: {exc}") from None
        fields.append("tool_policy")
    if audit_arguments is not None:
        if audit_arguments not in Connector.AuditArguments.values:
            raise TenantError(
                f"unknown audit_arguments {audit_arguments!r}: use "
                + ", ".join(Connector.AuditArguments.values)
            )
        connector.audit_arguments = audit_arguments
        fields.append("audit_arguments")
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


def _clean_email(email: str) -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise TenantError("enter a valid email address") from None
    if len(email) > 254:
        raise TenantError("an email address has at most 254 characters")
    return email


_INVITATION_SALT = "tenants.invitation"


def invitation_url(invitation: Invitation) -> str:
    """The invitee's link: the invitation's id and nonce, signed (no secret is stored)."""
    token = signing.Signer(salt=_INVITATION_SALT).sign_object([invitation.pk, invitation.nonce])
    return f"{settings.PUBLIC_URL}/dashboard/invitations/{token}/"


def _invitation_send(invitation: Invitation) -> None:
    """The same email whether or not an account with the address exists."""
    tenant = invitation.tenant
    inviter = invitation.invited_by.username if invitation.invited_by else "An operator"
    days = max(1, settings.INVITATION_TTL // 86400)
    send_mail(
        subject=f"You are invited to {tenant.name}",
        message=(
            f"{inviter} invited you to join {tenant.name} on {settings.PUBLIC_URL} "
            f"as {invitation.role}.\n\nOpen this link to accept: sign in if you already have an "
            f"account here, or choose a password to create one.\n{invitation_url(invitation)}\n\n"
            f"The link works for {days} day{'s' if days != 1 else ''}.\n"
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )


def member_invite(
    *, tenant: Tenant, email: str, role: str = Membership.Role.MEMBER, invited_by=None
) -> Invitation:
    """Invite ``email`` to the tenant and email them a link; nothing is attached until they
    accept. Whether an account with the address exists changes nothing here (no account is
    created or joined, the answer is the same). Inviting an address with a pending invitation
    sends that invitation again (with the new role)."""
    email = _clean_email(email)
    if role not in Membership.Role.values:
        raise TenantError(f"unknown role {role!r}: use admin or member")
    if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
        raise TenantError(f"{email} is already a member of {tenant.name}")
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .filter(tenant=tenant, email=email, accepted__isnull=True)
            .first()
        )
        if invitation is None:
            invitation = Invitation(tenant=tenant, email=email)
        invitation.role = role
        invitation.invited_by = invited_by
        invitation.nonce = secrets.token_urlsafe(24)
        invitation.sent = timezone.now()
        invitation.save()
    _invitation_send(invitation)
    return invitation


def invitation_resend(*, invitation: Invitation) -> Invitation:
    """Send a pending invitation again with a fresh link (the older link stops working) and a
    fresh expiry."""
    if invitation.accepted:
        raise TenantError("this invitation was accepted already")
    invitation.nonce = secrets.token_urlsafe(24)
    invitation.sent = timezone.now()
    invitation.save(update_fields=["nonce", "sent"])
    _invitation_send(invitation)
    return invitation


def invitation_revoke(*, invitation: Invitation) -> None:
    if invitation.accepted:
        raise TenantError("this invitation was accepted already")
    invitation.delete()


class InvitationUnusable(TenantError):
    """The link cannot be used; ``reason`` is invalid, used or expired."""

    def __init__(self, reason: str, invitation: Invitation | None = None):
        super().__init__(reason)
        self.reason = reason
        self.invitation = invitation


def invitation_from_token(token: str) -> Invitation:
    """The pending invitation a link names, or InvitationUnusable."""
    try:
        pk, nonce = signing.Signer(salt=_INVITATION_SALT).unsign_object(token)
    except (signing.BadSignature, TypeError, ValueError):
        raise InvitationUnusable("invalid") from None
    invitation = Invitation.objects.select_related("tenant").filter(pk=pk).first()
    if invitation is None:
        raise InvitationUnusable("invalid")
    if invitation.accepted:
        raise InvitationUnusable("used", invitation)
    if not secrets.compare_digest(invitation.nonce, str(nonce)):
        raise InvitationUnusable("invalid")
    if invitation.expired or not invitation.tenant.enabled:
        raise InvitationUnusable("expired", invitation)
    return invitation


def _invitation_join(invitation: Invitation, user) -> Membership:
    membership, _ = Membership.objects.get_or_create(
        tenant=invitation.tenant, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted", "accepted_by"])
    return membership


def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """The signed-in ``user`` accepts; only the account with the invited address may."""
    if (user.email or "").lower() != invitation.email:
        raise TenantError(
            "this invitation was sent to another email address: sign in with the account "
            "that has that address"
        )
    with transaction.atomic():
        return _invitation_join(invitation, user)


def invitation_accept_new_account(*, invitation: Invitation, password: str) -> Membership:
    """Create the invitee's account with ``password`` (checked by AUTH_PASSWORD_VALIDATORS)
    and join; refused when an account with the address exists (that account signs in to
    accept instead)."""
    with transaction.atomic():
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise TenantError(
                "an account with this email address exists: sign in to accept "
                "(or reset its password)"
            )
        user = User(username=_username_from_email(invitation.email), email=invitation.email)
        _check_password(password, user)
        user.set_password(password)
        user.save()
        return _invitation_join(invitation, user)


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
