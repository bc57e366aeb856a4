"""Throttled sign-in: failed attempts are counted per account and per client address in the
cache (Redis when CACHE_REDIS_URL/REDIS_URL is set, so every replica shares the counts), and a
sign-in over either limit is refused, right password or not, until the window ends.

One authentication backend does it, so /accounts/login/, /admin/login/ and the sign-in in
front of consent (the same login page) are all covered; the forms only word the refusal.
"""

import hashlib
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError

from config.proxy import client_address


def _keys(username: str | None, address: str | None) -> list[tuple[str, int]]:
    window = int(time.time() // settings.SIGNIN_FAILURE_WINDOW)
    keys = []
    if username:
        account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        keys.append((f"signin-fail:account:{account}:{window}", settings.SIGNIN_ACCOUNT_LIMIT))
    if address:
        keys.append((f"signin-fail:address:{address}:{window}", settings.SIGNIN_ADDRESS_LIMIT))
    return keys


def signin_throttled(request, username: str | None) -> bool:
    address = client_address(request) if request is not None else None
    keys = _keys(username, address)
    counts = cache.get_many([key for key, _ in keys])
    return any(counts.get(key, 0) >= limit for key, limit in keys)


def _signin_failed(request, username: str | None) -> None:
    address = client_address(request) if request is not None else None
    for key, _ in _keys(username, address):
        cache.add(key, 0, settings.SIGNIN_FAILURE_WINDOW)
        try:
            cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, settings.SIGNIN_FAILURE_WINDOW)


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if signin_throttled(request, username):
            raise PermissionDenied("too many failed sign-ins")
        user = super().authenticate(
            request, username=_username_for(username), password=password, **kwargs
        )
        if user is None:
            _signin_failed(request, username)
        return user

    @staticmethod
    def _username_field() -> str:
        return get_user_model().USERNAME_FIELD


def _username_for(identifier: str | None) -> str | None:
    """Sign-in by username or email: an email names the one active account that has it (no
    username contains "@" unless it was chosen so; that username still wins)."""
    if not identifier or "@" not in identifier:
        return identifier
    User = get_user_model()
    if User.objects.filter(username=identifier).exists():
        return identifier
    usernames = list(
        User.objects.filter(email__iexact=identifier.strip(), is_active=True).values_list(
            "username", flat=True
        )[:2]
    )
    return usernames[0] if len(usernames) == 1 else identifier


THROTTLED_MESSAGE = (
    "Too many failed sign-ins for this account or from this address. "
    "Wait a few minutes, then try again."
)


class _ThrottleMessage:
    def get_invalid_login_error(self):
        if signin_throttled(self.request, self.cleaned_data.get("username")):
            return ValidationError(THROTTLED_MESSAGE, code="throttled")
        return super().get_invalid_login_error()


class SignInForm(_ThrottleMessage, AuthenticationForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Username or email"
        self.fields["username"].max_length = 254


class AdminSignInForm(_ThrottleMessage, AdminAuthenticationForm):
    pass
