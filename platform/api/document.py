"""The OpenAPI document's views (/api/schema, /api/docs, /api/redoc): imported by api.urls at
their first request, not before (api/openapi.py says why)."""

from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

schema = SpectacularAPIView.as_view()
docs = SpectacularSwaggerView.as_view(url_name="api-schema")
redoc = SpectacularRedocView.as_view(url_name="api-schema")
