"""Every dashboard view for the operator, a tenant admin, a member, a member of another tenant
and an anonymous visitor: the status code each gets, and that no page shows another tenant's
data (nor, to a member, another member's clients)."""

import pytest

from tests.support.world import (
    ACME_IDP_SECRET,
    ACME_MARKS,
    ALICE_PRIVATE,
    GLOBEX_MARKS,
    PASSWORDS,
    rolled_back,
)

# The checkout has no collectstatic output; the apps' static files are served from the apps.
pytestmark = pytest.mark.filterwarnings("ignore:No directory at")

ROLES = ["anonymous", "eve", "bob", "alice", "olga"]
# (name, method, path, form data, expected status per role in ROLES order)
ANON = 302  # to the sign-in page
CASES = [
    ("overview", "get", "/dashboard/", None, (ANON, 200, 200, 200, 200)),
    (
        "tenant-new",
        "post",
        "/dashboard/tenants/new",
        {"slug": "initech", "name": "Initech"},
        (ANON, 403, 403, 403, 302),
    ),
    ("tenant", "get", "/dashboard/t/acme/", None, (ANON, 404, 200, 200, 200)),
    (
        "tenant-rename",
        "post",
        "/dashboard/t/acme/update",
        {"name": "Acme Renamed"},
        (ANON, 404, 403, 302, 302),
    ),
    (
        "tenant-disable",
        "post",
        "/dashboard/t/acme/update",
        {"enabled": "0"},
        (ANON, 404, 403, 403, 302),
    ),
    (
        "connector-new",
        "post",
        "/dashboard/t/acme/connectors/new",
        {"kind": "echo", "slug": "echo-2", "mode": "per_user"},
        (ANON, 404, 403, 302, 302),
    ),
    ("members", "get", "/dashboard/t/acme/members/", None, (ANON, 404, 403, 200, 200)),
    (
        "invite",
        "post",
        "/dashboard/t/acme/members/invite",
        {"email": "new@example.com", "role": "member"},
        (ANON, 404, 403, 302, 302),
    ),
    (
        "role",
        "post",
        "/dashboard/t/acme/members/{bob_membership}/role",
        {"role": "admin"},
        (ANON, 404, 403, 302, 302),
    ),
    (
        "remove",
        "post",
        "/dashboard/t/acme/members/{bob_membership}/remove",
        {},
        (ANON, 404, 403, 302, 302),
    ),
    ("sso", "get", "/dashboard/t/acme/sso/", None, (ANON, 404, 403, 200, 200)),
    (
        "sso-save",
        "post",
        "/dashboard/t/acme/sso/",
        {
            "name": "Acme Entra",
            "issuer": "https://login.microsoftonline.example/tid/v2.0",
            "client_id": "acme-entra",
            "scopes": "openid email profile",
            "allowed_domains": "acme.example",
            "role_rules": "groups=admins:admin\ngroups=staff:member",
            "default_role": "none",
            "enabled": "on",
        },
        (ANON, 404, 403, 302, 302),
    ),
    (
        "sso-save-bad-rule",
        "post",
        "/dashboard/t/acme/sso/",
        {
            "name": "Acme Entra",
            "issuer": "https://login.microsoftonline.example/tid/v2.0",
            "client_id": "acme-entra",
            "scopes": "openid",
            "role_rules": "groups=admins:owner",
            "default_role": "none",
        },
        (ANON, 404, 403, 400, 400),
    ),
    ("sso-remove", "post", "/dashboard/t/acme/sso/remove", {}, (ANON, 404, 403, 302, 302)),
    ("globex-sso", "get", "/dashboard/t/globex/sso/", None, (ANON, 403, 404, 404, 200)),
    ("connector", "get", "/dashboard/connectors/{echo}/", None, (ANON, 404, 200, 200, 200)),
    ("books", "get", "/dashboard/connectors/{books}/", None, (ANON, 404, 200, 200, 200)),
    (
        "status",
        "get",
        "/dashboard/connectors/{books}/status.json",
        None,
        (ANON, 404, 200, 200, 200),
    ),
    (
        "connector-update",
        "post",
        "/dashboard/connectors/{echo}/update",
        {"name": "Echo two", "mode": "per_user"},
        (ANON, 404, 403, 302, 302),
    ),
    (
        "connector-disable",
        "post",
        "/dashboard/connectors/{echo}/update",
        {"enabled": "0"},
        (ANON, 404, 403, 302, 302),
    ),
    ("trace", "get", "/dashboard/connectors/{echo}/trace", None, (ANON, 404, 200, 200, 200)),
    ("audit", "get", "/dashboard/t/acme/audit/", None, (ANON, 404, 200, 200, 200)),
    (
        "audit-filtered",
        "get",
        "/dashboard/t/acme/audit/?outcome=ok&q=client&member=alice",
        None,
        (ANON, 404, 200, 200, 200),
    ),
    (
        "audit-export-csv",
        "get",
        "/dashboard/t/acme/audit/?export=csv",
        None,
        (ANON, 404, 200, 200, 200),
    ),
    (
        "audit-export-jsonl",
        "get",
        "/dashboard/t/acme/audit/?export=jsonl",
        None,
        (ANON, 404, 200, 200, 200),
    ),
    (
        "audit-export-bad",
        "get",
        "/dashboard/t/acme/audit/?export=xml",
        None,
        (ANON, 404, 400, 400, 400),
    ),
    ("globex-audit", "get", "/dashboard/t/globex/audit/", None, (ANON, 200, 404, 404, 200)),
    (
        "tool-policy",
        "post",
        "/dashboard/connectors/{echo}/policy",
        {"off": "fail", "admins_only": "whoami", "audit_arguments": "writes"},
        (ANON, 404, 403, 302, 302),
    ),
    (
        "trace-partial",
        "get",
        "/dashboard/connectors/{echo}/trace?partial=1",
        None,
        (ANON, 404, 200, 200, 200),
    ),
    (
        "revoke-bob-client",
        "post",
        "/dashboard/connectors/{echo}/clients/{bob_app}/revoke",
        {},
        (ANON, 404, 302, 302, 302),
    ),
    (
        "revoke-alice-client",
        "post",
        "/dashboard/connectors/{echo}/clients/{alice_app}/revoke",
        {},
        (ANON, 404, 404, 302, 302),
    ),
    (
        "connect-page",
        "get",
        "/dashboard/connectors/{books}/connect",
        None,
        (ANON, 404, 200, 200, 200),
    ),
    (
        "connect-start",
        "post",
        "/dashboard/connectors/{books}/connect",
        {},
        (ANON, 404, 302, 302, 302),
    ),
    (
        "disconnect-bob",
        "post",
        "/dashboard/connections/{bob_connection}/disconnect",
        {},
        (ANON, 404, 200, 200, 200),
    ),
    (
        "disconnect-alice",
        "post",
        "/dashboard/connections/{alice_connection}/disconnect",
        {},
        (ANON, 404, 404, 200, 200),
    ),
    ("api-keys", "get", "/dashboard/keys/", None, (ANON, 200, 200, 200, 200)),
    ("api-key-create", "post", "/dashboard/keys/", {"name": "laptop"}, (ANON, 200, 200, 200, 200)),
    (
        "api-key-revoke-alice",
        "post",
        "/dashboard/keys/{alice_key}/revoke",
        {},
        (ANON, 404, 404, 302, 404),
    ),
    (
        "disconnect-eve",
        "post",
        "/dashboard/connections/{eve_connection}/disconnect",
        {},
        (ANON, 200, 404, 404, 200),
    ),
]


def _path(template: str, world) -> str:
    from tenants.api_keys import api_key_create

    alice_key, _ = api_key_create(user=world.users["alice"], name="alice's key")
    return template.format(
        alice_key=alice_key.pk,
        echo=world.echo.pk,
        books=world.books.pk,
        bob_membership=world.memberships["bob"].pk,
        bob_app=world.apps["bob-client"].pk,
        alice_app=world.apps["alice-client"].pk,
        bob_connection=world.connections["bob"].pk,
        alice_connection=world.connections["alice"].pk,
        eve_connection=world.connections["eve"].pk,
    )


def _forbidden_marks(role: str) -> list[str]:
    if role == "eve":
        return ACME_MARKS
    if role == "bob":
        return GLOBEX_MARKS + ALICE_PRIVATE
    if role == "alice":
        return GLOBEX_MARKS
    return []


@pytest.mark.parametrize(
    ("name", "method", "path", "data", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_dashboard_view_answers_each_role(client, world, name, method, path, data, expected):
    url = _path(path, world)
    for role, want in zip(ROLES, expected, strict=True):
        with rolled_back():
            client.logout()
            if role != "anonymous":
                assert client.login(username=role, password=PASSWORDS[role])
            response = getattr(client, method)(url, data or {})
            assert response.status_code == want, (name, role, response.status_code)
            if role == "anonymous":
                assert response["Location"].startswith("/accounts/login/")
            raw = b"".join(response.streaming_content) if response.streaming else response.content
            text = raw.decode()
            assert ACME_IDP_SECRET not in text
            for mark in _forbidden_marks(role):
                assert mark not in text, f"{name}: {role} sees {mark!r}"


def test_the_overview_shows_each_person_their_own_tenants(client, world):
    client.login(username="eve", password=PASSWORDS["eve"])
    page = client.get("/dashboard/").content.decode()
    assert "Globex Corp" in page and "Acme Inc" not in page
    client.login(username="olga", password=PASSWORDS["olga"])
    page = client.get("/dashboard/").content.decode()
    assert "Globex Corp" in page and "Acme Inc" in page and "Create a tenant" in page


def test_a_member_sees_only_their_own_clients_and_connections(client, world):
    client.login(username="bob", password=PASSWORDS["bob"])
    page = client.get(f"/dashboard/connectors/{world.echo.pk}/").content.decode()
    assert "bob-client" in page and "alice-client" not in page
    assert "Save settings" not in page  # no admin forms
    books = client.get(f"/dashboard/connectors/{world.books.pk}/").content.decode()
    assert f'data-connection-status="{world.connections["bob"].pk}"' in books
    assert f'data-connection-status="{world.connections["alice"].pk}"' not in books
    client.login(username="alice", password=PASSWORDS["alice"])
    page = client.get(f"/dashboard/connectors/{world.echo.pk}/").content.decode()
    assert "bob-client" in page and "alice-client" in page and "Save settings" in page
