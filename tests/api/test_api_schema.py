"""The OpenAPI document, its docs page (served from our own static files), and schemathesis
sending generated requests to every operation (in-process, as the operator): none may
answer 5xx."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings

pytestmark = [
    pytest.mark.filterwarnings("ignore:No directory at"),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume"),
]


@pytest.mark.django_db(transaction=True)
def test_schema_describes_the_api_and_the_docs_need_no_cdn(live_url):
    schema = httpx.get(f"{live_url}/api/schema?format=json").json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    assert {
        "/api/v1/tenants/",
        "/api/v1/tenants/{slug}/members/",
        "/api/v1/connectors/{connector_id}/clients/{application_id}/revoke/",
        "/api/v1/connectors/{connector_id}/events/",
        "/api/v1/keys/",
    } <= paths
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    # The views' annotations reach drf_spectacular only when the schema is built (api/openapi.py)
    me = schema["paths"]["/api/v1/me/"]["get"]
    assert me["summary"] == "Who the key or session belongs to"
    assert me["operationId"] == "v1_me_retrieve"
    assert me["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MeOut"
    }
    connection = schema["components"]["schemas"]["ConnectionOut"]["properties"]
    assert not any("token" in name for name in connection)  # upstream tokens never leave

    docs = httpx.get(f"{live_url}/api/docs")
    assert docs.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs.text
    assert "cdn" not in docs.text.lower()
    bundle = httpx.get(
        f"{live_url}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    )
    assert bundle.status_code == 200


def _openapi_document() -> dict:
    """The document /api/schema serves, built in-process (schemathesis's lazy loader, which
    would fetch it from a live server, does not work with this pytest)."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


class _DjangoWsgi:
    """Django's WSGI handler, built on first use (under the test's settings): requests run in
    the test's thread and transaction, so each operation's writes roll back."""

    handler = None

    def __call__(self, environ, start_response):
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.signals import request_finished, request_started
        from django.db import close_old_connections

        if self.handler is None:
            self.handler = WSGIHandler()
        # As Django's test client does: the request must not close the test's connection.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            body = b"".join(response)
            response.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        return [body]


schema = schemathesis.openapi.from_dict(_openapi_document())
schema.app = _DjangoWsgi()


@schema.parametrize()
@hypothesis_settings(
    max_examples=5,
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
@pytest.mark.django_db
def test_no_generated_request_makes_the_api_fail(case, world, settings):
    from tenants.api_keys import api_key_create

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]  # the WSGI client's host
    key = api_key_create(user=world.users["olga"], name="schemathesis")[1]
    response = case.call(headers={"Authorization": f"Bearer {key}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
