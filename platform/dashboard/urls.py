"""The dashboard's URLs, under /dashboard/ (names are global: the two first ones predate it)."""

from django.urls import path

from dashboard import sso, views

urlpatterns = [
    path("", views.overview, name="dashboard"),
    path("tenants/new", views.tenant_new, name="dashboard-tenant-new"),
    path("keys/", views.api_keys, name="dashboard-api-keys"),
    path("keys/<int:key_id>/revoke", views.api_key_revoke, name="dashboard-api-key-revoke"),
    path("t/<slug:slug>/", views.tenant_detail, name="dashboard-tenant"),
    path("t/<slug:slug>/update", views.tenant_update, name="dashboard-tenant-update"),
    path("t/<slug:slug>/connectors/new", views.connector_new, name="dashboard-connector-new"),
    path("t/<slug:slug>/members/", views.members, name="dashboard-members"),
    path("t/<slug:slug>/sso/", sso.sso_settings, name="dashboard-sso"),
    path("t/<slug:slug>/sso/remove", sso.sso_remove, name="dashboard-sso-remove"),
    path("t/<slug:slug>/audit/", views.audit_log, name="dashboard-audit"),
    path("t/<slug:slug>/members/invite", views.member_invite, name="dashboard-member-invite"),
    path(
        "t/<slug:slug>/invitations/<int:invitation_id>/resend",
        views.invitation_resend,
        name="dashboard-invitation-resend",
    ),
    path(
        "t/<slug:slug>/invitations/<int:invitation_id>/revoke",
        views.invitation_revoke,
        name="dashboard-invitation-revoke",
    ),
    path("invitations/<str:token>/", views.invitation_open, name="dashboard-invitation"),
    path(
        "t/<slug:slug>/members/<int:membership_id>/role",
        views.member_role,
        name="dashboard-member-role",
    ),
    path(
        "t/<slug:slug>/members/<int:membership_id>/remove",
        views.member_remove,
        name="dashboard-member-remove",
    ),
    path("connectors/<int:connector_id>/", views.connector_detail, name="dashboard-connector"),
    path(
        "connectors/<int:connector_id>/test",
        views.connector_test,
        name="dashboard-connector-test",
    ),
    path(
        "connectors/<int:connector_id>/test-upstream",
        views.connector_test_upstream,
        name="dashboard-connector-test-upstream",
    ),
    path(
        "connectors/<int:connector_id>/status.json",
        views.connector_status,
        name="dashboard-connector-status",
    ),
    path(
        "connectors/<int:connector_id>/update",
        views.connector_update,
        name="dashboard-connector-update",
    ),
    path(
        "connectors/<int:connector_id>/policy",
        views.connector_policy,
        name="dashboard-connector-policy",
    ),
    path(
        "connectors/<int:connector_id>/trace",
        views.connector_trace,
        name="dashboard-connector-trace",
    ),
    path(
        "connectors/<int:connector_id>/clients/<int:application_id>/revoke",
        views.client_revoke,
        name="dashboard-client-revoke",
    ),
    path(
        "connectors/<int:connector_id>/connect",
        views.connector_connect,
        name="connector-connect",
    ),
    path(
        "connections/<int:connection_id>/disconnect",
        views.connection_disconnect,
        name="connection-disconnect",
    ),
]
