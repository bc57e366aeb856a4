"""Throttled sign-in: failed attempts are counted per account and per client address in the
cache (Redis when CACHE_REDIS_URL/REDIS_URL is set, so every replica shares the counts), and a
sign-in over either limit is refused, right password or not, until the window ends.

One authentication backend does it, so /accounts/login/, /admin/login/ and the sign-in in
front of consent (the same login page) are all covered; the forms only word the refusal.
"""

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied, ValidationError

from config.limits import limit_hit, limit_reached
from config.proxy import client_address


def _counters(request, username: str | None) -> list[tuple[str, int]]:
    """(counter name, limit): one per account, one per client address."""
    address = client_address(request) if request is not None else None
    counters = []
    if username:
        counters.append(
            (f"signin-fail:account:{username.strip().lower()}", settings.SIGNIN_ACCOUNT_LIMIT)
        )
    if address:
        counters.append((f"signin-fail:address:{address}", settings.SIGNIN_ADDRESS_LIMIT))
    return counters


def signin_throttled(request, username: str | None) -> bool:
    window = settings.SIGNIN_FAILURE_WINDOW
    return any(
        limit_reached(name, limit=limit, window=window)
        for name, limit in _counters(request, username)
    )


def _signin_failed(request, username: str | None) -> None:
    for name, limit in _counters(request, username):
        limit_hit(name, limit=limit, window=settings.SIGNIN_FAILURE_WINDOW)


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
