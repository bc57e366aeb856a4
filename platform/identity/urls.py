"""/sso/...: sign in through a tenant's OpenID Connect provider."""

from django.urls import path

from identity import views

urlpatterns = [
    path("start", views.start_by_email, name="sso-start-by-email"),
    path("t/<slug:tenant>/start", views.start, name="sso-start"),
    path("t/<slug:tenant>/callback", views.callback, name="sso-callback"),
    path("t/<slug:tenant>/link", views.link, name="sso-link"),
]
