"""The browser's round trip through a tenant's provider: start, then the callback.

The protocol is authlib's (see ``identity.oidc``); here are the platform's rules around it: a
pending sign-in is bound to this browser session and used once, where the person goes next,
and a clear page (never a 500) for everything that can go wrong.
"""

import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from identity.models import IdentityProvider
from identity.oidc import LEEWAY_SECONDS, id_token_claims_options, oidc_client, redirect_uri_for

log = logging.getLogger(__name__)

PENDING_KEY = "sso_pending"
MAX_PENDING = 5


class SignInFailed(Exception):
    """The provider's answer cannot be used; ``title``/``message`` are shown, ``reason`` kept."""

    def __init__(self, reason: str, title: str, message: str, status: int = 400):
        super().__init__(message)
        self.reason = reason
        self.title = title
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Verified:
    claims: dict
    next_url: str
    link_user_id: int | None


def start_url(provider: IdentityProvider, next_url: str = "") -> str:
    """Where a sign-in through ``provider`` begins; back at ``next_url`` afterwards."""
    url = reverse("sso-start", args=[provider.tenant.slug])
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def safe_next(request, next_url: str) -> str:
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return "/dashboard/"


def _unreachable(provider: IdentityProvider) -> SignInFailed:
    return SignInFailed(
        "provider_unreachable",
        f"{provider.name} cannot be reached",
        f"The platform could not talk to {provider.name} ({provider.issuer}). Try again in a "
        "moment; if it keeps failing, the tenant's admins should check the issuer URL.",
        502,
    )


def sign_in_start(request, provider: IdentityProvider, *, next_url: str, link_user=None):
    """The redirect to the provider's authorization endpoint (PKCE S256, state, nonce)."""
    state = secrets.token_urlsafe(24)
    pending = request.session.get(PENDING_KEY, {})
    pending = dict(list(pending.items())[-(MAX_PENDING - 1) :])
    pending[state] = {
        "provider_id": provider.pk,
        "next": safe_next(request, next_url),
        "link_user_id": link_user.pk if link_user is not None else None,
    }
    request.session[PENDING_KEY] = pending
    client = oidc_client(provider)
    try:
        return client.authorize_redirect(
            request, redirect_uri_for(provider.tenant.slug), state=state
        )
    except (requests.RequestException, ValueError, RuntimeError) as exc:
        log.warning("provider discovery failed", extra={"error": str(exc)[:200]})
        raise _unreachable(provider) from None


def sign_in_verify(request, provider: IdentityProvider) -> Verified:
    """The verified ID token claims of the provider's answer, or ``SignInFailed``.

    The state must be one this browser session started for this provider and is used once,
    so a replayed or foreign callback is refused before anything is sent to the provider."""
    state = request.GET.get("state", "")
    pending = request.session.get(PENDING_KEY, {}).pop(state, None) if state else None
    request.session.modified = True
    if pending is None or pending["provider_id"] != provider.pk:
        raise SignInFailed(
            "unknown_state",
            "This sign-in has expired",
            "It was already used, is too old, or was started in another browser. "
            "Start again from the sign-in page.",
        )
    client = oidc_client(provider)
    from authlib.integrations.base_client import OAuthError  # loaded by oidc_client
    from joserfc.errors import JoseError

    try:
        token = client.authorize_access_token(
            request,
            claims_options=id_token_claims_options(provider),
            leeway=LEEWAY_SECONDS,
        )
    except OAuthError as exc:
        raise SignInFailed(
            "provider_error",
            f"{provider.name} did not sign you in",
            f"{provider.name} answered: {exc.error}"
            + (f" ({exc.description})" if exc.description else "")
            + ". Start again from the sign-in page.",
        ) from None
    except JoseError as exc:
        log.warning(
            "ID token refused",
            extra={"provider": provider.pk, "error": f"{type(exc).__name__}: {exc}"[:200]},
        )
        raise SignInFailed(
            "id_token_invalid",
            "The sign-in could not be verified",
            f"The ID token {provider.name} returned is not valid for this platform "
            f"({type(exc).__name__}: {exc}). Nobody was signed in.",
        ) from None
    except (requests.RequestException, ValueError, KeyError, RuntimeError) as exc:
        log.warning("provider exchange failed", extra={"error": str(exc)[:200]})
        raise _unreachable(provider) from None
    claims = token.get("userinfo")
    if not claims:
        raise SignInFailed(
            "no_id_token",
            "The sign-in could not be verified",
            f"{provider.name} returned no ID token; check that the openid scope is allowed.",
        )
    # The provider's access and refresh tokens are not needed after sign-in: they are dropped
    # here, never stored.
    return Verified(
        claims=dict(claims), next_url=pending["next"], link_user_id=pending["link_user_id"]
    )
