"""Discovery: RFC 8414 / OIDC authorization-server metadata and RFC 9728 resource metadata."""

from django.conf import settings
from django.http import Http404, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.common import no_append_slash
from oauth2_provider.views import OAuthProtectedResourceMetadataView

from events.services import event_record_for_request
from tenants.models import Connector


def issuer() -> str:
    return settings.PUBLIC_URL


def authorization_server_metadata() -> dict:
    """The one issuer's metadata: only what clients should use (code + PKCE S256, one scope)."""
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
        "scopes_supported": [settings.MCP_SCOPE],
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
        return [settings.MCP_SCOPE]

    def get_resource_name(self):
        return f"{self.connector.display_name} ({self.connector.tenant.name})"
