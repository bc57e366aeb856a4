"""Reads: which provider a sign-in should go to."""

from urllib.parse import parse_qs, urlsplit

from identity.models import IdentityProvider
from identity.oidc import redirect_uri_for
from tenants.selectors import connector_from_url


def provider_of(*, tenant) -> IdentityProvider | None:
    """The tenant's provider, enabled or not (for its admins' settings page)."""
    return IdentityProvider.objects.filter(tenant=tenant).first()


def provider_for_tenant(*, tenant_slug: str) -> IdentityProvider | None:
    """The tenant's enabled provider, or None."""
    return (
        IdentityProvider.objects.select_related("tenant")
        .filter(tenant__slug=tenant_slug, enabled=True, tenant__enabled=True)
        .first()
    )


def provider_for_email(*, email: str) -> IdentityProvider | None:
    """The enabled provider that lists the email's domain among its allowed domains."""
    domain = email.strip().rsplit("@", 1)[-1].lower()
    if not domain:
        return None
    for provider in IdentityProvider.objects.select_related("tenant").filter(
        enabled=True, tenant__enabled=True
    ):
        if domain in provider.allowed_domains:
            return provider
    return None


def provider_for_next_url(next_url: str) -> IdentityProvider | None:
    """The provider of the tenant whose connector a pending ``/authorize`` URL names."""
    parts = urlsplit(next_url or "")
    if parts.path != "/authorize":
        return None
    resources = parse_qs(parts.query).get("resource", [])
    connector = connector_from_url(resources[0]) if len(resources) == 1 else None
    if connector is None:
        return None
    return provider_for_tenant(tenant_slug=connector.tenant.slug)


def passwords_refused_for(user) -> bool:
    """True when the user belongs to a tenant that signs in only through its provider
    (operators keep their password: they are the way back in when a provider breaks)."""
    if user.is_superuser:
        return False
    return IdentityProvider.objects.filter(
        tenant__memberships__user=user, enabled=True, local_passwords_allowed=False
    ).exists()


def provider_summary(provider: IdentityProvider) -> dict:
    """What the API and the CLI show of a provider: everything but the secret itself."""
    return {
        "tenant": provider.tenant.slug,
        "name": provider.name,
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret_set": bool(provider.client_secret_encrypted),
        "redirect_uri": redirect_uri_for(provider.tenant.slug),
        "scopes": provider.scopes,
        "allowed_domains": provider.allowed_domains,
        "role_rules": provider.role_rules,
        "default_role": provider.default_role,
        "local_passwords_allowed": provider.local_passwords_allowed,
        "enabled": provider.enabled,
    }
