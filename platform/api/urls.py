"""/api/v1/ (the management API), /api/schema (its OpenAPI document) and /api/docs."""

from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from api import views


def _document_view(name: str):
    """api.document's view ``name``, imported at its first request (api/openapi.py says why)."""

    def view(request, *args, **kwargs):
        from api import document

        return getattr(document, name)(request, *args, **kwargs)

    return csrf_exempt(view)  # as DRF's views are


v1 = [
    path("me/", views.MeView.as_view(), name="api-me"),
    path("keys/", views.ApiKeysView.as_view(), name="api-keys"),
    path("keys/<int:key_id>/", views.ApiKeyView.as_view(), name="api-key"),
    path("tenants/", views.TenantsView.as_view(), name="api-tenants"),
    path("tenants/<slug:slug>/", views.TenantView.as_view(), name="api-tenant"),
    path("tenants/<slug:slug>/members/", views.MembersView.as_view(), name="api-members"),
    path(
        "tenants/<slug:slug>/members/<int:member_id>/",
        views.MemberView.as_view(),
        name="api-member",
    ),
    path("tenants/<slug:slug>/sso/", views.IdentityProviderView.as_view(), name="api-sso"),
    path("tenants/<slug:slug>/audit/", views.AuditRecordsView.as_view(), name="api-audit"),
    path(
        "tenants/<slug:slug>/audit/export/",
        views.AuditExportView.as_view(),
        name="api-audit-export",
    ),
    path(
        "tenants/<slug:slug>/invitations/", views.InvitationsView.as_view(), name="api-invitations"
    ),
    path(
        "tenants/<slug:slug>/invitations/<int:invitation_id>/",
        views.InvitationView.as_view(),
        name="api-invitation",
    ),
    path(
        "tenants/<slug:slug>/connectors/",
        views.TenantConnectorsView.as_view(),
        name="api-tenant-connectors",
    ),
    path("connectors/", views.ConnectorsView.as_view(), name="api-connectors"),
    path("connectors/<int:connector_id>/", views.ConnectorView.as_view(), name="api-connector"),
    path(
        "connectors/<int:connector_id>/connections/",
        views.ConnectionsView.as_view(),
        name="api-connections",
    ),
    path(
        "connections/<int:connection_id>/disconnect/",
        views.ConnectionDisconnectView.as_view(),
        name="api-connection-disconnect",
    ),
    path("connectors/<int:connector_id>/clients/", views.ClientsView.as_view(), name="api-clients"),
    path(
        "connectors/<int:connector_id>/clients/<int:application_id>/revoke/",
        views.ClientRevokeView.as_view(),
        name="api-client-revoke",
    ),
    path(
        "connectors/<int:connector_id>/tokens/<str:kind>/<int:token_id>/",
        views.TokenView.as_view(),
        name="api-token",
    ),
    path("connectors/<int:connector_id>/events/", views.EventsView.as_view(), name="api-events"),
    path("connectors/<int:connector_id>/trace/", views.TraceView.as_view(), name="api-trace"),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema", _document_view("schema"), name="api-schema"),
    path("docs", _document_view("docs"), name="api-docs"),
    path("redoc", _document_view("redoc"), name="api-redoc"),
]
