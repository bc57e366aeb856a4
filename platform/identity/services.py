"""Writes of single sign-on: a tenant's provider, and what a verified sign-in does.

``sign_in_apply`` gets claims of an ID token that ``identity.oidc`` has already verified
(signature, issuer, audience, expiry, nonce). It decides who the person is on this platform
and which role they have in the provider's tenant, every time they sign in.
"""

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from config import crypto
from events.models import Event
from events.services import event_record
from identity import mapping
from identity.models import ExternalIdentity, IdentityProvider
from tenants.models import Membership, Tenant

log = logging.getLogger(__name__)
User = get_user_model()

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class IdentityError(ValueError):
    """Bad provider configuration; the message is shown to the admin as is."""


class SignInRefused(Exception):
    """A verified person who may not sign in; ``title`` and ``message`` are shown to them."""

    def __init__(self, reason: str, title: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.title = title
        self.message = message


# --- the provider -------------------------------------------------------------------------------


def _issuer_clean(issuer: str) -> str:
    issuer = issuer.strip()
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or not parts.hostname:
        raise IdentityError(f"{issuer!r} is not an issuer URL such as https://accounts.google.com")
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    ):
        raise IdentityError("the issuer URL must use https")
    return issuer


def provider_save(
    *,
    tenant: Tenant,
    name: str,
    issuer: str,
    client_id: str,
    client_secret: str | None = None,
    scopes: str = "openid email profile",
    allowed_domains: list[str] | None = None,
    role_rules: list[dict] | None = None,
    default_role: str = IdentityProvider.DefaultRole.NONE,
    local_passwords_allowed: bool = True,
    enabled: bool = True,
) -> IdentityProvider:
    """Create or replace the tenant's OpenID Connect provider. ``client_secret`` None keeps
    the stored secret; "" clears it (a public client)."""
    name, client_id = name.strip(), client_id.strip()
    if not name:
        raise IdentityError('a provider needs a name, shown as "Sign in with <name>"')
    if not client_id:
        raise IdentityError("a provider needs the client id it issued to this platform")
    if "openid" not in scopes.split():
        raise IdentityError("scopes must include openid")
    if default_role not in IdentityProvider.DefaultRole.values:
        raise IdentityError("default role must be member or none")
    try:
        domains = mapping.domains_clean(allowed_domains or [])
        rules = mapping.rules_clean(role_rules or [])
    except mapping.RuleError as exc:
        raise IdentityError(str(exc)) from None
    provider = IdentityProvider.objects.filter(tenant=tenant).first() or IdentityProvider(
        tenant=tenant
    )
    provider.name = name[:100]
    provider.issuer = _issuer_clean(issuer)
    provider.client_id = client_id
    if client_secret is not None:
        provider.client_secret_encrypted = crypto.encrypt(client_secret) if client_secret else ""
    provider.scopes = " ".join(scopes.split())
    provider.allowed_domains = domains
    provider.role_rules = rules
    provider.default_role = default_role
    provider.local_passwords_allowed = local_passwords_allowed
    provider.enabled = enabled
    provider.save()
    return provider


def provider_delete(*, provider: IdentityProvider) -> None:
    """Remove the provider and its links; the people it created keep their accounts and
    memberships until an admin removes them."""
    provider.delete()


def providers_reencrypt() -> int:
    """Re-encrypt every provider's client secret under the newest key."""
    count = 0
    for provider in IdentityProvider.objects.exclude(client_secret_encrypted=""):
        provider.client_secret_encrypted = crypto.reencrypt(provider.client_secret_encrypted)
        provider.save(update_fields=["client_secret_encrypted"])
        count += 1
    return count


def identity_link_by_operator(*, provider: IdentityProvider, user) -> ExternalIdentity:
    """Let an existing account be signed in to through ``provider``: the first sign-in whose
    (verified) email equals the account's email claims it."""
    if not user.email:
        raise IdentityError(f"{user.username} has no email address to match a sign-in with")
    identity = ExternalIdentity.objects.filter(provider=provider, user=user).first()
    if identity is not None:
        raise IdentityError(f"{user.username} is already linked to {provider.name}")
    return ExternalIdentity.objects.create(
        provider=provider, user=user, email=user.email, linked_by=ExternalIdentity.LinkedBy.OPERATOR
    )


# --- a verified sign-in -------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    user: object
    role: str
    created_user: bool


def _membership_end(*, user_id: int, tenant: Tenant) -> None:
    """The removal path of a member: the membership's delete signals (``authserver.signals``,
    ``upstream.signals``) end their MCP tokens for the tenant's connectors and their per-user
    upstream connections."""
    with transaction.atomic():
        for membership in Membership.objects.filter(user_id=user_id, tenant=tenant):
            membership.delete()


def _refuse(provider, reason: str, title: str, message: str, *, user_id=None, email="") -> None:
    if user_id is not None:
        _membership_end(user_id=user_id, tenant=provider.tenant)
    event_record(
        kind="sso.sign_in",
        outcome=Event.Outcome.DENIED,
        tenant_id=provider.tenant_id,
        user_id=user_id,
        detail={"reason": reason, "email_domain": email.rsplit("@", 1)[-1] if email else ""},
    )
    raise SignInRefused(reason, title, message)


def _username_for(email: str) -> str:
    candidate, n = email[:150], 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        suffix = f"-{n}"
        candidate = email[: 150 - len(suffix)] + suffix
    return candidate


def sign_in_apply(*, provider: IdentityProvider, claims: dict, link_user=None) -> SignIn:
    """Who a verified person is here, and their role in the provider's tenant, re-applied on
    every sign-in. ``link_user``: the signed-in local account that asked to be linked.

    Raises ``SignInRefused`` for anyone the provider's rules keep out; a known person who is
    now kept out loses their membership (and with it their tokens and connections)."""
    tenant = provider.tenant
    subject = str(claims["sub"])
    email = str(claims.get("email") or "").strip().lower()
    known = (
        ExternalIdentity.objects.select_related("user")
        .filter(provider=provider, subject=subject)
        .first()
    )
    known_user_id = known.user_id if known else None

    if not email or claims.get("email_verified") is False:
        _refuse(
            provider,
            "no_verified_email",
            "No verified email address",
            f"{provider.name} did not vouch for an email address for this account, so it "
            f"cannot be used to sign in to {tenant.name}. Ask your administrator to release "
            "the email claim to this application.",
            user_id=known_user_id,
        )
    if not mapping.email_domain_allowed(email, provider.allowed_domains):
        _refuse(
            provider,
            "domain_not_allowed",
            "This account is not allowed here",
            f"{tenant.name} accepts only accounts of {', '.join(provider.allowed_domains)} "
            f"through {provider.name}; {email} is not one of them.",
            user_id=known_user_id,
            email=email,
        )
    role = mapping.role_for_claims(
        claims, rules=provider.role_rules, default_role=provider.default_role
    )
    if role == mapping.NONE:
        _refuse(
            provider,
            "no_allowed_group",
            f"No access to {tenant.name}",
            f"{email} signed in at {provider.name}, but is in none of the groups that may use "
            f"{tenant.name}. Ask your administrator to add you to one of them.",
            user_id=known_user_id,
            email=email,
        )

    try:
        with transaction.atomic():
            user, created, identity = _user_for(
                provider=provider, subject=subject, email=email, known=known, link_user=link_user
            )
            identity.email = email
            identity.last_sign_in_at = timezone.now()
            identity.save()
            Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    except SignInRefused as refusal:
        event_record(
            kind="sso.sign_in",
            outcome=Event.Outcome.DENIED,
            tenant_id=tenant.pk,
            detail={"reason": refusal.reason},
        )
        raise
    event_record(
        kind="sso.sign_in",
        tenant_id=tenant.pk,
        user_id=user.pk,
        detail={"role": role, "created_user": created, "linked_by": identity.linked_by},
    )
    return SignIn(user=user, role=role, created_user=created)


def _user_for(*, provider, subject, email, known, link_user):
    """(user, created, identity) for a verified person. An account that already exists with
    this email is never taken over: it is linked only by its owner (``link_user``, signed in
    with its password) or by an operator's pending link."""
    if known is not None:
        if link_user is not None and link_user.pk != known.user_id:
            raise SignInRefused(
                "already_linked",
                "Already linked to another account",
                f"This {provider.name} account already signs in as another user here.",
            )
        return known.user, False, known
    if link_user is not None:
        if ExternalIdentity.objects.filter(provider=provider, user=link_user).exists():
            raise SignInRefused(
                "already_linked",
                "Already linked",
                f"{link_user.username} is already linked to another {provider.name} account.",
            )
        identity = ExternalIdentity(
            provider=provider, user=link_user, linked_by=ExternalIdentity.LinkedBy.LOCAL
        )
        identity.subject = subject
        return link_user, False, identity
    pending = (
        ExternalIdentity.objects.select_related("user")
        .filter(provider=provider, subject__isnull=True, user__email__iexact=email)
        .first()
    )
    if pending is not None:
        pending.subject = subject
        return pending.user, False, pending
    if User.objects.filter(email__iexact=email).exists():
        raise SignInRefused(
            "email_belongs_to_local_account",
            "An account with this email already exists",
            f"{email} already has an account here that signs in with a password. To use "
            f"{provider.name} for it, sign in with that password, then open "
            f"{settings.PUBLIC_URL}{reverse('sso-link', args=[provider.tenant.slug])} "
            "to link it; or ask an operator to link it.",
        )
    user = User(username=_username_for(email), email=email)
    user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # a parallel first sign-in took the username
        user.username = _username_for(email)
        user.save()
    identity = ExternalIdentity(
        provider=provider, user=user, subject=subject, linked_by=ExternalIdentity.LinkedBy.SIGN_IN
    )
    return user, True, identity
