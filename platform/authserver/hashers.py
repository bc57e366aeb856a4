"""Client secrets at rest: a keyed digest, as API keys are, not a password hasher.

A client secret is 40+ random characters chosen by DOT, so nothing is gained from PBKDF2's million
rounds but half a second of CPU on every /token request that presents one, right or wrong.
Registered in PASSWORD_HASHERS (last, so user passwords keep PBKDF2) because DOT verifies secrets
with Django's ``check_password``; selected for clients by DOT's ``CLIENT_SECRET_HASHER``.
"""

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare, salted_hmac

_PURPOSE = "authserver.client_secret"


def _digest(secret: str, key: str) -> str:
    return salted_hmac(_PURPOSE, secret, secret=key, algorithm="sha256").hexdigest()


class ClientSecretHasher(BasePasswordHasher):
    """``client_hmac_sha256$<hex>``: HMAC-SHA256 of the secret under SECRET_KEY.

    Secrets digested under a key in SECRET_KEY_FALLBACKS still verify, so SECRET_KEY can be
    rotated the Django way; dropping the old key from the fallbacks ends those secrets.
    """

    algorithm = "client_hmac_sha256"

    def salt(self) -> str:
        return ""  # the secret is random; a salt would add nothing

    def encode(self, password: str, salt: str) -> str:
        return f"{self.algorithm}${_digest(password, settings.SECRET_KEY)}"

    def decode(self, encoded: str) -> dict:
        algorithm, digest = encoded.split("$", 1)
        return {"algorithm": algorithm, "hash": digest, "salt": ""}

    def verify(self, password: str, encoded: str) -> bool:
        digest = self.decode(encoded)["hash"]
        keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
        return any(constant_time_compare(digest, _digest(password, key)) for key in keys)

    def safe_summary(self, encoded: str) -> dict:
        return {"algorithm": self.algorithm, "hash": mask_hash(self.decode(encoded)["hash"])}

    def must_update(self, encoded: str) -> bool:
        return False

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass  # nothing to equalise: every verification costs the same two HMACs
