"""Every management API endpoint for the operator, a tenant admin, a member, a member of another
tenant and an anonymous caller: the status code, DRF's error shape, and that no answer holds
another tenant's data (nor, for a member, another member's clients)."""

import pytest

from tenants.api_keys import api_key_create
from tests.support.world import (
    ACME_IDP_SECRET,
    ACME_MARKS,
    ALICE_PRIVATE,
    GLOBEX_MARKS,
    rolled_back,
)

# The checkout has no collectstatic output; the apps' static files are served from the apps.
pytestmark = pytest.mark.filterwarnings("ignore:No directory at")

ROLES = ["anonymous", "eve", "bob", "alice", "olga"]
# (name, method, path, JSON body, expected status per role in ROLES order)
CASES = [
    ("me", "get", "/api/v1/me/", None, (401, 200, 200, 200, 200)),
    ("keys", "get", "/api/v1/keys/", None, (401, 200, 200, 200, 200)),
    ("key-create", "post", "/api/v1/keys/", {"name": "ci"}, (401, 201, 201, 201, 201)),
    ("key-revoke-alice", "delete", "/api/v1/keys/{alice_key}/", None, (401, 404, 404, 204, 404)),
    ("tenants", "get", "/api/v1/tenants/", None, (401, 200, 200, 200, 200)),
    ("tenant-create", "post", "/api/v1/tenants/", {"slug": "initech"}, (401, 403, 403, 403, 201)),
    ("tenant", "get", "/api/v1/tenants/acme/", None, (401, 404, 200, 200, 200)),
    (
        "tenant-rename",
        "patch",
        "/api/v1/tenants/acme/",
        {"name": "Acme 2"},
        (401, 404, 403, 200, 200),
    ),
    (
        "tenant-disable",
        "patch",
        "/api/v1/tenants/acme/",
        {"enabled": False},
        (401, 404, 403, 403, 200),
    ),
    ("members", "get", "/api/v1/tenants/acme/members/", None, (401, 404, 403, 200, 200)),
    (
        "invite",
        "post",
        "/api/v1/tenants/acme/members/",
        {"email": "new@example.com"},
        (401, 404, 403, 201, 201),
    ),
    (
        "member-role",
        "patch",
        "/api/v1/tenants/acme/members/{bob_membership}/",
        {"role": "admin"},
        (401, 404, 403, 200, 200),
    ),
    (
        "member-remove",
        "delete",
        "/api/v1/tenants/acme/members/{bob_membership}/",
        None,
        (401, 404, 403, 204, 204),
    ),
    ("sso", "get", "/api/v1/tenants/acme/sso/", None, (401, 404, 403, 200, 200)),
    (
        "sso-put",
        "put",
        "/api/v1/tenants/acme/sso/",
        {
            "name": "Acme Google",
            "issuer": "https://accounts.google.com",
            "client_id": "acme.apps.googleusercontent.com",
            "allowed_domains": ["acme.example"],
            "role_rules": [{"claim": "hd", "value": "acme.example", "role": "member"}],
        },
        (401, 404, 403, 200, 200),
    ),
    (
        "sso-put-http-issuer",
        "put",
        "/api/v1/tenants/acme/sso/",
        {"name": "Plain", "issuer": "http://idp.example", "client_id": "x"},
        (401, 404, 403, 400, 400),
    ),
    ("sso-delete", "delete", "/api/v1/tenants/acme/sso/", None, (401, 404, 403, 204, 204)),
    ("globex-sso", "get", "/api/v1/tenants/globex/sso/", None, (401, 403, 404, 404, 404)),
    (
        "tenant-connectors",
        "get",
        "/api/v1/tenants/acme/connectors/",
        None,
        (401, 404, 200, 200, 200),
    ),
    (
        "connector-create",
        "post",
        "/api/v1/tenants/acme/connectors/",
        {"kind": "echo", "slug": "echo-2"},
        (401, 404, 403, 201, 201),
    ),
    ("connectors", "get", "/api/v1/connectors/", None, (401, 200, 200, 200, 200)),
    ("connector", "get", "/api/v1/connectors/{echo}/", None, (401, 404, 200, 200, 200)),
    (
        "connector-update",
        "patch",
        "/api/v1/connectors/{echo}/",
        {"enabled": False},
        (401, 404, 403, 200, 200),
    ),
    (
        "connections",
        "get",
        "/api/v1/connectors/{books}/connections/",
        None,
        (401, 404, 200, 200, 200),
    ),
    (
        "disconnect-bob",
        "post",
        "/api/v1/connections/{bob_connection}/disconnect/",
        None,
        (401, 404, 200, 200, 200),
    ),
    (
        "disconnect-alice",
        "post",
        "/api/v1/connections/{alice_connection}/disconnect/",
        None,
        (401, 404, 404, 200, 200),
    ),
    ("clients", "get", "/api/v1/connectors/{echo}/clients/", None, (401, 404, 200, 200, 200)),
    (
        "revoke-bob-client",
        "post",
        "/api/v1/connectors/{echo}/clients/{bob_app}/revoke/",
        None,
        (401, 404, 200, 200, 200),
    ),
    (
        "revoke-alice-client",
        "post",
        "/api/v1/connectors/{echo}/clients/{alice_app}/revoke/",
        None,
        (401, 404, 404, 200, 200),
    ),
    (
        "token-bob",
        "delete",
        "/api/v1/connectors/{echo}/tokens/access/{bob_token}/",
        None,
        (401, 404, 204, 204, 204),
    ),
    (
        "token-alice",
        "delete",
        "/api/v1/connectors/{echo}/tokens/access/{alice_token}/",
        None,
        (401, 404, 404, 204, 204),
    ),
    ("events", "get", "/api/v1/connectors/{echo}/events/", None, (401, 404, 200, 200, 200)),
    ("trace", "get", "/api/v1/connectors/{echo}/trace/", None, (401, 404, 200, 200, 200)),
    (
        "globex-connector",
        "get",
        "/api/v1/connectors/{globex_echo}/",
        None,
        (401, 200, 404, 404, 200),
    ),
    ("globex-tenant", "get", "/api/v1/tenants/globex/", None, (401, 200, 404, 404, 200)),
    ("audit", "get", "/api/v1/tenants/acme/audit/", None, (401, 404, 200, 200, 200)),
    (
        "audit-filtered",
        "get",
        "/api/v1/tenants/acme/audit/?outcome=ok&q=client",
        None,
        (401, 404, 200, 200, 200),
    ),
    (
        "audit-bad-filter",
        "get",
        "/api/v1/tenants/acme/audit/?outcome=maybe",
        None,
        (401, 404, 400, 400, 400),
    ),
    (
        "audit-export-csv",
        "get",
        "/api/v1/tenants/acme/audit/export/?type=csv",
        None,
        (401, 404, 200, 200, 200),
    ),
    (
        "audit-export-jsonl",
        "get",
        "/api/v1/tenants/acme/audit/export/?type=jsonl",
        None,
        (401, 404, 200, 200, 200),
    ),
    (
        "audit-export-bad",
        "get",
        "/api/v1/tenants/acme/audit/export/?type=xml",
        None,
        (401, 404, 400, 400, 400),
    ),
    ("globex-audit", "get", "/api/v1/tenants/globex/audit/", None, (401, 200, 404, 404, 200)),
    (
        "tool-policy",
        "patch",
        "/api/v1/connectors/{echo}/",
        {"tool_policy": {"off": ["fail"], "admins_only": ["whoami"]}},
        (401, 404, 403, 200, 200),
    ),
    (
        "tool-policy-bad",
        "patch",
        "/api/v1/connectors/{echo}/",
        {"tool_policy": {"off": "fail"}},
        (401, 404, 403, 400, 400),
    ),
    (
        "audit-arguments",
        "patch",
        "/api/v1/connectors/{echo}/",
        {"audit_arguments": "full"},
        (401, 404, 403, 200, 200),
    ),
]


def _path(template: str, world, keys) -> str:
    return template.format(
        echo=world.echo.pk,
        books=world.books.pk,
        globex_echo=world.globex_echo.pk,
        alice_key=keys["alice"].pk,
        bob_membership=world.memberships["bob"].pk,
        bob_app=world.apps["bob-client"].pk,
        alice_app=world.apps["alice-client"].pk,
        bob_token=world.tokens["bob-client"].pk,
        alice_token=world.tokens["alice-client"].pk,
        bob_connection=world.connections["bob"].pk,
        alice_connection=world.connections["alice"].pk,
    )


def _forbidden_marks(role: str) -> list[str]:
    return {
        "eve": ACME_MARKS,
        "bob": GLOBEX_MARKS + ALICE_PRIVATE,
        "alice": GLOBEX_MARKS,
    }.get(role, [])


@pytest.fixture
def keys(world):
    return {name: api_key_create(user=user, name="test") for name, user in world.users.items()}


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_api_endpoint_answers_each_role(client, world, keys, name, method, path, body, expected):
    url = _path(path, world, {k: v[0] for k, v in keys.items()})
    call = getattr(client, method)
    for role, want in zip(ROLES, expected, strict=True):
        headers = {} if role == "anonymous" else {"Authorization": f"Bearer {keys[role][1]}"}
        with rolled_back():
            if body is not None:
                response = call(url, body, content_type="application/json", headers=headers)
            else:
                response = call(url, headers=headers)
        assert response.status_code == want, (name, role, response.status_code, response.content)
        if want >= 400 and name != "audit-bad-filter" and name != "audit-export-bad":
            assert set(response.json()) == {"detail"}, response.json()  # DRF's error shape
        elif want == 400:
            assert response.json()  # DRF's validation error: field -> messages
        if want == 401:
            assert response["WWW-Authenticate"].startswith("Bearer")
        raw = b"".join(response.streaming_content) if response.streaming else response.content
        text = raw.decode()
        assert ACME_IDP_SECRET not in text
        for mark in _forbidden_marks(role):
            assert mark not in text, f"{name}: {role} sees {mark!r}"


def test_upstream_tokens_never_appear_in_the_api(client, world, keys):
    from config import crypto

    headers = {"Authorization": f"Bearer {keys['olga'][1]}"}
    text = client.get(f"/api/v1/connectors/{world.books.pk}/connections/", headers=headers)
    body = text.content.decode()
    assert "token_encrypted" not in body
    for connection in world.connections.values():
        assert crypto.decrypt(connection.access_token_encrypted) not in body
        assert crypto.decrypt(connection.refresh_token_encrypted) not in body


def test_the_identity_providers_client_secret_is_stored_encrypted(world):
    from config import crypto
    from identity.models import IdentityProvider

    stored = IdentityProvider.objects.get(tenant=world.acme).client_secret_encrypted
    assert ACME_IDP_SECRET not in stored
    assert crypto.decrypt(stored) == ACME_IDP_SECRET
