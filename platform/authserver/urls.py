"""The authorization server at the origin root, in DOT's URL namespace so its views resolve.

Deliberately absent: RFC 7662 introspection (the gateway reads tokens from the database; no
resource server outside this process exists), and changing a registration (RFC 7592 PUT).
"""

from django.urls import path, re_path

from authserver import metadata, views
from authserver.registration import RegisterView, RegistrationManagementView

app_name = "oauth2_provider"

urlpatterns = [
    path("authorize", views.AuthorizeView.as_view(), name="authorize"),
    path(
        "authorize/resume/<str:authorization_id>",
        views.ResumeAuthorizationView.as_view(),
        name="authorize-resume",
    ),
    path("token", views.TracedTokenView.as_view(), name="token"),
    path("register", RegisterView.as_view(), name="dcr-register"),
    path(
        "register/<str:client_id>",
        RegistrationManagementView.as_view(),
        name="dcr-register-management",
    ),
    path("revoke", views.RevokeView.as_view(), name="revoke-token"),
    path(
        ".well-known/oauth-authorization-server",
        metadata.authorization_server_metadata_view,
        name="oauth-server-metadata",
    ),
    re_path(
        r"^\.well-known/openid-configuration$",
        metadata.authorization_server_metadata_view,
        name="oidc-connect-discovery-info",
    ),
    path(
        ".well-known/oauth-protected-resource/t/<slug:tenant>/<slug:connector>/mcp",
        metadata.ConnectorResourceMetadataView.as_view(),
        name="oauth-resource-metadata-path",
    ),
]
