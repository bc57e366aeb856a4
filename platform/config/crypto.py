"""Sealing with the upstream encryption keys (``UPSTREAM_ENCRYPTION_KEYS``): MultiFernet, newest
key first, rotatable. Upstream tokens, connector secrets and the refresh grace answer are stored
this way. A leaf helper of ``config`` (it imports no app), so any app layer may use it."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class UndecryptableToken(Exception):
    """A stored token cannot be decrypted with any configured key (a key was removed)."""


def keys_load(keys) -> MultiFernet:
    """The keys as one MultiFernet, newest first; ImproperlyConfigured names a bad one."""
    return _fernet(tuple(keys))


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("UPSTREAM_ENCRYPTION_KEYS is empty")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise ImproperlyConfigured(
                f"UPSTREAM_ENCRYPTION_KEYS: key {position} of {len(keys)} is not a Fernet key "
                "(32 url-safe base64 bytes)"
            ) from None
    return MultiFernet(fernets)


def _current() -> MultiFernet:
    return keys_load(settings.UPSTREAM_ENCRYPTION_KEYS)


def encrypt(value: str) -> str:
    return _current().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    try:
        return _current().decrypt(value.encode()).decode()
    except InvalidToken:
        raise UndecryptableToken("stored upstream token cannot be decrypted") from None


def reencrypt(value: str) -> str:
    """The same plaintext under the newest key."""
    try:
        return _current().rotate(value.encode()).decode()
    except InvalidToken:
        raise UndecryptableToken("stored upstream token cannot be decrypted") from None


def generate_key() -> str:
    return Fernet.generate_key().decode()
