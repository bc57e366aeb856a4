"""The schema class of the API's OpenAPI document (DEFAULT_SCHEMA_CLASS) and its extensions.

Loaded only when a schema is generated (/api/schema, ``manage.py spectacular``), never by a web
process that serves calls (api/openapi.py says why).
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

from api.openapi import annotations_apply


class AutoSchema(SpectacularAutoSchema):
    """drf_spectacular's, unchanged: DRF resolves it before it reads any view's annotation."""


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API key (mcpk_...), created in the API or the dashboard.",
        }


annotations_apply()
