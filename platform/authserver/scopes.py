"""The scopes the authorization server issues: the platform's own (``MCP_SCOPE``, every token)
and the ones installed connector kinds' tools may need (``ConnectorKind.scopes``), for step-up.

django-oauth-toolkit asks this backend (``SCOPES_BACKEND_CLASS``) which scopes exist, which a
client may request and which it gets when it names none.
"""

from django.conf import settings
from oauth2_provider.scopes import BaseScopes

from connectors.base import offered_scopes


def all_scopes() -> dict[str, str]:
    """Scope -> what it allows (the consent page's words), the platform's own first."""
    own = settings.OAUTH2_PROVIDER["SCOPES"]
    return {**own, **{k: v for k, v in offered_scopes().items() if k not in own}}


class ConnectorScopes(BaseScopes):
    def get_all_scopes(self):
        return all_scopes()

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        return list(all_scopes())

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return [settings.MCP_SCOPE]
