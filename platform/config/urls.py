from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from django.views.generic import RedirectView

from authserver.upstream_hop import upstream_callback
from config import health
from dashboard import views as dashboard_views

urlpatterns = [
    path("", include("authserver.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("upstream/<slug:provider>/callback", login_required(upstream_callback)),
    path(
        "dashboard/connectors/<int:connector_id>/connect",
        dashboard_views.connector_connect,
        name="connector-connect",
    ),
    path(
        "dashboard/connections/<int:connection_id>/disconnect",
        dashboard_views.connection_disconnect,
        name="connection-disconnect",
    ),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
