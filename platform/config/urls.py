from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from config import health
from tenants.signin import AdminSignInForm, SignInForm

admin.site.login_form = AdminSignInForm

urlpatterns = [
    path("", include("authserver.urls")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=SignInForm),
        name="login",
    ),
    path(
        "accounts/logout/",
        auth_views.LogoutView.as_view(template_name="registration/signed_out.html"),
        name="logout",
    ),
    path("admin/", admin.site.urls),
    path("upstream/", include("upstream.urls")),
    path("sso/", include("identity.urls")),
    path("accounts/", include("dashboard.account_urls")),
    path(
        "accounts/set-password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="dashboard/set_password.html",
            post_reset_login=True,
            success_url="/dashboard/",
        ),
        name="set-password",
    ),
    path("dashboard/", include("dashboard.urls")),
    path("api/", include("api.urls")),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("favicon.ico", RedirectView.as_view(url=static("dashboard/favicon.svg"), permanent=True)),
    path("", RedirectView.as_view(url="/dashboard/", permanent=False)),
]

# The platform's own error pages (JSON under /api/), named by path: config imports no face.
handler400 = "dashboard.errors.bad_request"
handler403 = "dashboard.errors.permission_denied"
handler404 = "dashboard.errors.not_found"
handler500 = "dashboard.errors.server_error"
