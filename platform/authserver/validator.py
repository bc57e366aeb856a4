"""django-oauth-toolkit's validator with the connector rules added."""

import hashlib

from oauth2_provider.models import RefreshToken
from oauth2_provider.oauth2_validators import OAuth2Validator

from authserver.models import UsedAuthorizationCode


def _checksum(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ConnectorOAuth2Validator(OAuth2Validator):
    """Adds code-replay revocation (RFC 6749 section 4.1.2) to DOT's validator.

    Every token is bound to exactly one connector URL; /authorize puts it on the grant, and
    DOT carries a grant's ``resource`` onto its tokens and refuses a token request that asks
    for another.
    """

    def _save_bearer_token(self, token, request, *args, **kwargs):
        super()._save_bearer_token(token, request, *args, **kwargs)
        if request.grant_type == "authorization_code" and token.get("refresh_token"):
            refresh = (
                RefreshToken.objects.filter(token_checksum=_checksum(token["refresh_token"]))
                .only("token_family")
                .first()
            )
            request.issued_token_family = refresh.token_family if refresh else None

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        UsedAuthorizationCode.objects.get_or_create(
            code_checksum=_checksum(code),
            defaults={"token_family": getattr(request, "issued_token_family", None)},
        )
        super().invalidate_authorization_code(client_id, code, request, *args, **kwargs)

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        if super().validate_code(client_id, code, client, request, *args, **kwargs):
            return True
        used = UsedAuthorizationCode.objects.filter(code_checksum=_checksum(code)).first()
        if used and used.token_family:
            # A replayed code: whoever holds it may be an attacker, so the tokens the
            # first exchange issued are revoked too.
            RefreshToken.revoke_family(used.token_family)
        return False
