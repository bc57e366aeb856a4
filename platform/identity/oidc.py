"""The OpenID Connect client of one provider, built on authlib's Django integration.

authlib does the protocol: discovery, PKCE S256, ``state`` and ``nonce`` kept in the session
(single use), the code exchange, and the ID token's signature against the provider's JWKS.
What it leaves to the caller, and we insist on here: the audience (authlib only checks ``azp``
unless told), the issuer as configured (not merely as discovered), and that an ID token came
back at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.urls import reverse

from config import crypto
from identity.models import IdentityProvider

if TYPE_CHECKING:
    from authlib.integrations.django_client import DjangoOAuth2App

TIMEOUT_SECONDS = 10
# Clock skew tolerated on exp/iat (authlib's default is 120 s).
LEEWAY_SECONDS = 30


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def callback_path(tenant_slug: str) -> str:
    return reverse("sso-callback", args=[tenant_slug])


def redirect_uri_for(tenant_slug: str) -> str:
    """The redirect URI a tenant's admins register at their provider."""
    return settings.PUBLIC_URL + callback_path(tenant_slug)


def oidc_client(provider: IdentityProvider) -> DjangoOAuth2App:
    """A fresh client for ``provider`` (cheap; discovery and JWKS are fetched per sign-in, so a
    rotated provider key or a changed configuration needs no restart)."""
    # authlib (and joserfc under it) is imported here, by a sign-in through a provider, not
    # with the URLs: most web processes never run one (about 5 MB of resident memory).
    from authlib.integrations.django_client import DjangoIntegration, DjangoOAuth2App

    name = f"sso{provider.pk}"  # also the prefix of authlib's state keys in the session
    return DjangoOAuth2App(
        DjangoIntegration(name),
        name=name,
        client_id=provider.client_id,
        client_secret=crypto.decrypt(provider.client_secret_encrypted)
        if provider.client_secret_encrypted
        else None,
        server_metadata_url=discovery_url(provider.issuer),
        client_kwargs={
            "scope": provider.scopes,
            "code_challenge_method": "S256",
            "default_timeout": TIMEOUT_SECONDS,
        },
    )


def id_token_claims_options(provider: IdentityProvider) -> dict:
    """What the ID token must say besides a valid signature: our issuer, our client id."""
    return {
        "iss": {"essential": True, "value": provider.issuer},
        "aud": {"essential": True, "value": provider.client_id},
        "exp": {"essential": True},
        "sub": {"essential": True},
    }
