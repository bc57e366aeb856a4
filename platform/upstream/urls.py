"""The upstream OAuth client's pages, under ``/upstream/``."""

from django.urls import path

from upstream import views

urlpatterns = [
    path("hop/<str:authorization_id>", views.upstream_hop, name="upstream-hop"),
    path("<slug:provider>/callback", views.upstream_callback, name="upstream-callback"),
    path("<slug:provider>/credential", views.upstream_credential, name="upstream-credential"),
    path(
        "<slug:provider>/client-metadata.json",
        views.upstream_client_metadata,
        name="upstream-client-metadata",
    ),
]
