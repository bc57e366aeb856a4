"""Encryption at rest for upstream tokens: MultiFernet, newest key first, rotatable."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class UndecryptableToken(Exception):
    """A stored token cannot be decrypted with any configured key (a key was removed)."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("UPSTREAM_ENCRYPTION_KEYS is empty")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "UPSTREAM_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64 bytes each)"
        ) from exc


def _current() -> MultiFernet:
    return _fernet(tuple(settings.UPSTREAM_ENCRYPTION_KEYS))


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
