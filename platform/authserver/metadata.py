"""Discovery: RFC 8414 / OIDC authorization-server metadata and RFC 9728 resource metadata."""

from django.conf import settings
from django.http import Http404, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.common import no_append_slash
from oauth2_provider.views import OAuthProtectedResourceMetadataView

from authserver.scopes import all_scopes
from connectors.base import get_kind
from events.services import event_record_for_request
from tenants.models import Connector


def issuer() -> str:
    return settings.PUBLIC_URL


def authorization_server_metadata() -> dict:
    """The one issuer's metadata: only what clients should use (code + PKCE S256; the scopes:
    every token's own and those installed kinds' tools may need)."""
    base = issuer()
    auth_methods = ["none", "client_secret_post", "client_secret_basic"]
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "registration_endpoint": f"{base}/register",
        "revocation_endpoint": f"{base}/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": list(all_scopes()),
        "client_id_metadata_document_supported": True,
        "authorization_response_iss_parameter_supported": True,
        "service_documentation": f"{base}/",
    }


def authorization_server_metadata_view(request):
    event_record_for_request(
        request, kind="discovery.as_metadata", detail={"path": request.path}, status_code=200
    )
    response = JsonResponse(authorization_server_metadata())
    response["Cache-Control"] = "public, max-age=300"
    return response


@method_decorator(no_append_slash, name="dispatch")
class ConnectorResourceMetadataView(OAuthProtectedResourceMetadataView):
    """RFC 9728 metadata of one connector, at the path-inserted URL of its MCP endpoint."""

    def get(self, request, tenant: str, connector: str):
        self.connector = (
            Connector.objects.select_related("tenant")
            .filter(tenant__slug=tenant, slug=connector)
            .first()
        )
        if self.connector is None:
            raise Http404("no such connector")
        response = super().get(request)
        event_record_for_request(
            request,
            kind="discovery.resource_metadata",
            connector=self.connector,
            status_code=200,
            anonymous=True,
        )
        return response

    def get_resource(self, request):
        return self.connector.url

    def get_authorization_servers(self, request):
        return [issuer()]

    def get_scopes_supported(self):
        """Every token's scope, then the ones this connector's tools may need (step-up)."""
        try:
            needed = list(get_kind(self.connector.kind).scopes)
        except KeyError:  # a kind no longer installed
            needed = []
        return [settings.MCP_SCOPE, *needed]

    def get_resource_name(self):
        return f"{self.connector.display_name} ({self.connector.tenant.name})"
