"""Password sign-in (throttled), refused to members of tenants that sign in only through their
identity provider."""

from identity.selectors import passwords_refused_for
from tenants.signin import ThrottledModelBackend


class PasswordPolicyBackend(ThrottledModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and passwords_refused_for(user):
            return None
        return user
