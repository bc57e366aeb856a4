"""``{% sso_sign_in %}``: the sign-in page's "Sign in with ..." part."""

from django import template

from identity import selectors
from identity.models import IdentityProvider

register = template.Library()


@register.inclusion_tag("identity/_sign_in.html", takes_context=True)
def sso_sign_in(context) -> dict:
    """The provider of the tenant the sign-in is for (the connector being authorized, or
    ``?tenant=``) as a button, and the by-email form when any tenant has a provider."""
    request = context["request"]
    next_url = context.get("next") or request.GET.get("next", "")
    provider = selectors.provider_for_next_url(next_url)
    if provider is None and request.GET.get("tenant"):
        provider = selectors.provider_for_tenant(tenant_slug=request.GET["tenant"])
    any_provider = (
        provider is not None
        or IdentityProvider.objects.filter(enabled=True, tenant__enabled=True).exists()
    )
    return {
        "provider": provider,
        "any_provider": any_provider,
        "next": next_url,
        "csrf_token": context.get("csrf_token"),
    }
