"""``Authorization: Bearer mcpk_...`` with a personal API key."""

from rest_framework import authentication, exceptions

from tenants.api_keys import KEY_PREFIX, api_key_check


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip().startswith(KEY_PREFIX):
            return None  # not ours: the session may still authenticate the request
        row = api_key_check(key.strip())
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return row.user, row

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
