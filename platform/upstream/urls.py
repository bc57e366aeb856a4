"""The upstream OAuth client's pages, under ``/upstream/``."""

from django.urls import path

from upstream import views

urlpatterns = [
    path("hop/<str:authorization_id>", views.upstream_hop, name="upstream-hop"),
    path("<slug:provider>/callback", views.upstream_callback, name="upstream-callback"),
]
