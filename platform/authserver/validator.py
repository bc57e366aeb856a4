"""django-oauth-toolkit's validator with the connector rules added."""

import contextvars
import hashlib
import json
from datetime import timedelta

from django.contrib.auth.hashers import get_hasher, identify_hasher, make_password
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import Application, Grant, RefreshToken
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from authserver.models import RefreshGraceAnswer, TokenAudience, UsedAuthorizationCode
from authserver.registration import SUPPORTED_GRANT_TYPES
from config.crypto import decrypt, encrypt
from tenants.selectors import connector_id_from_resource

# The client_id of the client this /token request authenticated as ("" until it has): the
# token endpoint's trace names a client only once it proved to be that client.
authenticated_client: contextvars.ContextVar[str] = contextvars.ContextVar(
    "authenticated_client", default=""
)
# The connector whose grant this /token request exchanged (None until it has): the trace row
# names it without looking the connector up again.
exchanged_for_connector: contextvars.ContextVar = contextvars.ContextVar(
    "exchanged_for_connector", default=None
)


def _checksum(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ConnectorOAuth2Validator(OAuth2Validator):
    """Adds code-replay revocation (RFC 6749 section 4.1.2), a refresh grace answer that
    works with hashed token storage, and audience rows to DOT's validator.

    Every token is bound to exactly one connector URL; /authorize puts it on the grant, and
    DOT carries a grant's ``resource`` onto its tokens and refuses a token request that asks
    for another. The same binding is written as a ``TokenAudience`` row beside each grant and
    token: the grant's from the connector /authorize chose, a token's from the grant or the
    refresh token it comes from.
    """

    def authenticate_client(self, request, *args, **kwargs):
        authenticated = super().authenticate_client(request, *args, **kwargs)
        if authenticated:
            authenticated_client.set(request.client.client_id)
        return authenticated

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        authenticated = super().authenticate_client_id(client_id, request, *args, **kwargs)
        if authenticated:
            authenticated_client.set(request.client.client_id)
        return authenticated

    def _create_authorization_code(self, request, code, expires=None):
        grant = super()._create_authorization_code(request, code, expires)
        connector_id = getattr(request, "connector_id", None) or connector_id_from_resource(
            grant.resource
        )
        if connector_id:
            TokenAudience.objects.create(connector_id=connector_id, grant=grant)
        return grant

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        access = super()._create_access_token(expires, request, token, source_refresh_token)
        self._record_audience(request, source_refresh_token, access_token=access)
        return access

    def _create_refresh_token(self, request, refresh_token_code, access_token, previous):
        refresh = super()._create_refresh_token(request, refresh_token_code, access_token, previous)
        self._record_audience(request, previous, refresh_token=refresh)
        if request.grant_type == "authorization_code":
            # What a replay of this code revokes (invalidate_authorization_code records it).
            request.issued_token_family = refresh.token_family
        return refresh

    def _record_audience(self, request, previous_refresh_token, **token) -> None:
        """The new token's connector is its grant's or its previous refresh token's; rows
        from before audience rows existed fall back to their stored resource."""
        connector_id = None
        if previous_refresh_token is not None:
            connector_id = (
                TokenAudience.objects.filter(refresh_token=previous_refresh_token)
                .values_list("connector_id", flat=True)
                .first()
            )
        elif request.grant_type == "authorization_code":
            grant = self._grant(request.code, request.client, request)
            audience = _audience_of(grant) if grant is not None else None
            if audience is not None:
                connector_id = audience.connector_id
                exchanged_for_connector.set(audience.connector)
        connector_id = connector_id or connector_id_from_resource(getattr(request, "resource", []))
        if connector_id:
            TokenAudience.objects.create(connector_id=connector_id, **token)

    def _check_secret(self, provided_secret, stored_secret):
        if not super()._check_secret(provided_secret, stored_secret):
            return False
        try:
            stored_with = identify_hasher(stored_secret).algorithm
        except ValueError:
            return True  # stored unhashed on purpose (hash_client_secret off)
        hasher = get_hasher(oauth2_settings.CLIENT_SECRET_HASHER)
        if stored_with != hasher.algorithm:
            # Hashed by the slow password hasher before the keyed digest: the secret was just
            # proven right, so store its digest now and pay PBKDF2 for it this once only.
            Application.objects.filter(client_secret=stored_secret).update(
                client_secret=make_password(provided_secret, hasher=hasher)
            )
        return True

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        # Every token acts for a member who consented: client_credentials (no user), password
        # and device grants are refused for every client, whatever its registration says.
        if grant_type not in SUPPORTED_GRANT_TYPES:
            return False
        return super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs)

    def _save_bearer_token(self, token, request, *args, **kwargs):
        previous = getattr(request, "refresh_token_instance", None)
        issued = token.get("access_token")
        super()._save_bearer_token(token, request, *args, **kwargs)
        if request.grant_type == "refresh_token" and previous is not None:
            _grace_answer(token, previous.token_checksum, fresh=token.get("access_token") == issued)

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        """Delete the grant and remember its code as used, together: only the exchange that
        deleted the grant (a concurrent one gets invalid_grant) names the token family a
        replay revokes."""
        with transaction.atomic():
            super().invalidate_authorization_code(client_id, code, request, *args, **kwargs)
            UsedAuthorizationCode.objects.bulk_create(
                [
                    UsedAuthorizationCode(
                        code_checksum=_checksum(code),
                        token_family=getattr(request, "issued_token_family", None),
                    )
                ],
                ignore_conflicts=True,
            )

    # oauthlib asks about the grant of a code up to five times in one token request (the code,
    # the PKCE challenge and its method, the redirect URI, the resource); it is read once per
    # request. Grants are never changed in place, and deleting one is checked by the DELETE
    # in invalidate_authorization_code, so nothing read here can go stale within the request.

    def _grant(self, code, client, request):
        """The grant of ``code`` for ``client`` (with its user and audience), or None."""
        cached = getattr(request, "connector_grant", None)
        if cached is not None and cached.code == code and cached.application_id == client.pk:
            return cached
        grant = (
            Grant.objects.select_related("user", "audience__connector")
            .filter(code=code, application=client)
            .first()
        )
        request.connector_grant = grant
        return grant

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        grant = self._grant(code, client, request)
        if grant is not None and not grant.is_expired():
            # DOT's validate_code, on the grant read once.
            request.scopes = grant.scope.split(" ")
            request.user = grant.user
            if grant.nonce:
                request.nonce = grant.nonce
            if grant.claims:
                request.claims = json.loads(grant.claims)
            return True
        used = UsedAuthorizationCode.objects.filter(code_checksum=_checksum(code)).first()
        if used and used.token_family:
            # A replayed code: whoever holds it may be an attacker, so the tokens the
            # first exchange issued are revoked too.
            RefreshToken.revoke_family(used.token_family)
        return False

    def get_code_challenge(self, code, request):
        grant = self._grant(code, request.client, request)
        if grant is None:
            return super().get_code_challenge(code, request)
        return grant.code_challenge or None

    def get_code_challenge_method(self, code, request):
        grant = self._grant(code, request.client, request)
        if grant is None:
            return super().get_code_challenge_method(code, request)
        return grant.code_challenge_method or None

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request, *args, **kwargs):
        grant = self._grant(code, client, request)
        if grant is None:
            return super().confirm_redirect_uri(
                client_id, code, redirect_uri, client, request, *args, **kwargs
            )
        return grant.redirect_uri_allowed(redirect_uri)


def _audience_of(grant):
    try:
        return grant.audience
    except ObjectDoesNotExist:
        return None


def _grace_answer(token: dict, refresh_checksum: str, *, fresh: bool) -> None:
    """Tokens are stored hashed (COMPLIANT_BCP_RFC9700_TOKEN_STORAGE), so DOT's grace path,
    which answers a second refresh of one token with the pair the first issued, reads back
    blanks. The first refresh seals its pair with the upstream keys for the grace window; a
    second one inside the window (DOT kept the first pair) answers from the seal."""
    grace = oauth2_settings.REFRESH_TOKEN_GRACE_PERIOD_SECONDS
    if fresh:
        if grace > 0:
            RefreshGraceAnswer.objects.update_or_create(
                refresh_checksum=refresh_checksum,
                defaults={
                    "sealed": encrypt(
                        json.dumps([token["access_token"], token.get("refresh_token")])
                    ),
                    "expires": timezone.now() + timedelta(seconds=grace),
                },
            )
        return
    answer = RefreshGraceAnswer.objects.filter(
        refresh_checksum=refresh_checksum, expires__gt=timezone.now()
    ).first()
    if answer is None:
        raise errors.InvalidGrantError(description="The refresh token was already used")
    token["access_token"], token["refresh_token"] = json.loads(decrypt(answer.sealed))
