"""The test provider's claims (email, groups) and the ways a test can make it misbehave."""

import base64
import json
import time

from jwcrypto import jwk
from jwcrypto import jwt as jose_jwt
from oauth2_provider.oauth2_validators import OAuth2Validator

# username -> {"email", "email_verified", "groups", "misbehave"}; set over /_test/users.
PEOPLE: dict[str, dict] = {}
# A key that is not the provider's: what a forger would sign with.
FORGER_KEY = jwk.JWK.generate(kty="RSA", size=2048)


def _b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class TestIdpValidator(OAuth2Validator):
    oidc_claim_scope = None  # every claim below goes into the ID token

    def get_additional_claims(self, request):
        person = PEOPLE.get(request.user.username, {})
        claims = {"email": person.get("email", ""), "groups": person.get("groups", [])}
        if "email_verified" in person:
            claims["email_verified"] = person["email_verified"]
        return claims

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration = super().get_id_token_dictionary(token, token_handler, request)
        mode = PEOPLE.get(request.user.username, {}).get("misbehave", "")
        now = int(time.time())
        if mode == "expired":
            claims.update(exp=now - 600, iat=now - 900)
        elif mode == "wrong_audience":
            # Issued to another client, naming ours as the authorized party: what authlib
            # accepts unless the caller asks for its own client id as the audience.
            claims.update(aud="another-client", azp=request.client_id)
        elif mode == "wrong_issuer":
            claims["iss"] = "https://idp.example.invalid"
        elif mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce-that-was-sent"
        return claims, expiration

    def finalize_id_token(self, id_token, token, token_handler, request):
        signed = super().finalize_id_token(id_token, token, token_handler, request)
        if PEOPLE.get(request.user.username, {}).get("misbehave") != "forged":
            return signed
        header, payload, _signature = signed.split(".")
        # The same header (the provider's kid) and claims, signed with another key.
        forged = jose_jwt.JWT(header=_b64json(header), claims=_b64json(payload))
        forged.make_signed_token(FORGER_KEY)
        return forged.serialize()
