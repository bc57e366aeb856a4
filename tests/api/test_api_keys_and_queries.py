"""API keys from creation to revocation, the browser session as the other way in, pagination,
event filters, and validation errors in DRF's shape."""

import pytest
from django.utils import timezone

from events.models import Event
from events.services import event_record
from tenants.api_keys import api_key_create
from tenants.models import ApiKey
from tests.support.world import PASSWORDS

# The checkout has no collectstatic output; the apps' static files are served from the apps.
pytestmark = pytest.mark.filterwarnings("ignore:No directory at")


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_key_is_shown_once_stored_hashed_and_revocable(client, world):
    client.login(username="alice", password=PASSWORDS["alice"])
    created = client.post(
        "/api/v1/keys/", {"name": "deploy script"}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    key = created.json()["key"]
    assert key.startswith("mcpk_") and len(key) > 40
    row = ApiKey.objects.get(pk=created.json()["id"])
    assert key.startswith(row.prefix) and row.prefix == created.json()["prefix"]
    assert key not in (row.digest, row.prefix) and len(row.digest) == 64  # only an HMAC is kept

    # Listing never shows a key again.
    listed = client.get("/api/v1/keys/").json()
    assert listed["count"] == 1 and "key" not in listed["results"][0]
    client.logout()

    # The key works on its own, as alice.
    me = client.get("/api/v1/me/", headers=_auth(key))
    assert me.status_code == 200 and me.json()["username"] == "alice"
    assert me.json()["memberships"] == [{"tenant": "acme", "role": "admin"}]
    assert ApiKey.objects.get(pk=row.pk).last_used_at is not None

    # A wrong key with the right prefix, and a revoked key, are refused in DRF's shape.
    forged = client.get("/api/v1/me/", headers=_auth(row.prefix + "x" * 40))
    assert forged.status_code == 401 and forged.json() == {"detail": "Invalid or revoked API key."}
    assert client.delete(f"/api/v1/keys/{row.pk}/", headers=_auth(key)).status_code == 204
    revoked = client.get("/api/v1/me/", headers=_auth(key))
    assert revoked.status_code == 401 and "detail" in revoked.json()


def test_a_deactivated_users_key_stops_working(client, world):
    _, key = api_key_create(user=world.users["bob"], name="laptop")
    assert client.get("/api/v1/me/", headers=_auth(key)).status_code == 200
    world.users["bob"].is_active = False
    world.users["bob"].save()
    assert client.get("/api/v1/me/", headers=_auth(key)).status_code == 401


def test_the_browser_session_works_and_needs_csrf_for_writes(world):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.login(username="alice", password=PASSWORDS["alice"])
    assert browser.get("/api/v1/tenants/acme/").json()["role"] == "admin"
    refused = browser.patch(
        "/api/v1/tenants/acme/", {"name": "Acme 2"}, content_type="application/json"
    )
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]


def test_lists_are_paginated(client, world):
    _, key = api_key_create(user=world.users["olga"], name="ops")
    for n in range(7):
        event_record(kind="mcp.call", connector=world.echo, client_id=f"client-{n}", detail={})
    total = Event.objects.filter(connector=world.echo).count()
    first = client.get(
        f"/api/v1/connectors/{world.echo.pk}/events/?page_size=3", headers=_auth(key)
    )
    body = first.json()
    assert body["count"] == total and len(body["results"]) == 3
    assert body["next"] and body["previous"] is None
    second = client.get(body["next"], headers=_auth(key)).json()
    assert {e["id"] for e in second["results"]}.isdisjoint({e["id"] for e in body["results"]})
    # Newest first.
    times = [e["created"] for e in body["results"] + second["results"]]
    assert times == sorted(times, reverse=True)
    beyond = client.get(f"/api/v1/connectors/{world.echo.pk}/events/?page=99", headers=_auth(key))
    assert beyond.status_code == 404 and "detail" in beyond.json()


def test_event_filters(client, world):
    _, key = api_key_create(user=world.users["alice"], name="ops")
    event_record(
        kind="mcp.call",
        outcome="error",
        connector=world.echo,
        client_id="the-client",
        detail={"error": "boom"},
    )
    event_record(kind="mcp.call", connector=world.echo, client_id="other", detail={})
    url = f"/api/v1/connectors/{world.echo.pk}/events/"

    errors = client.get(f"{url}?outcome=error", headers=_auth(key)).json()["results"]
    assert [(e["kind"], e["client_id"], e["detail"]) for e in errors] == [
        ("mcp.call", "the-client", {"error": "boom"})
    ]
    by_client = client.get(f"{url}?client_id=other", headers=_auth(key)).json()["results"]
    assert {e["client_id"] for e in by_client} == {"other"}
    by_kind = client.get(f"{url}?kind=oauth.token", headers=_auth(key)).json()["results"]
    assert by_kind and {e["kind"] for e in by_kind} == {"oauth.token"}
    later = (timezone.now() + timezone.timedelta(minutes=5)).isoformat()
    assert client.get(url, {"since": later}, headers=_auth(key)).json()["count"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("get", "/api/v1/connectors/{echo}/events/?outcome=maybe", None, "outcome"),
        ("get", "/api/v1/connectors/{echo}/events/?since=yesterday", None, "since"),
        ("post", "/api/v1/tenants/", {"slug": "Not A Slug!"}, "slug"),
        ("post", "/api/v1/tenants/", {}, "slug"),
        ("post", "/api/v1/keys/", {"name": ""}, "name"),
        ("post", "/api/v1/tenants/acme/members/", {"email": "not-an-email"}, "email"),
        (
            "post",
            "/api/v1/tenants/acme/members/",
            {"email": "x@example.com", "role": "boss"},
            "role",
        ),
        ("patch", "/api/v1/tenants/acme/members/{bob_membership}/", {"role": "owner"}, "role"),
        ("patch", "/api/v1/connectors/{echo}/", {"mode": "sometimes"}, "mode"),
        ("patch", "/api/v1/connectors/{echo}/", {"enabled": "perhaps"}, "enabled"),
    ],
)
def test_bad_input_gets_field_errors(client, world, method, path, body, field):
    _, key = api_key_create(user=world.users["olga"], name="ops")
    url = path.format(echo=world.echo.pk, bob_membership=world.memberships["bob"].pk)
    if body is None:
        response = getattr(client, method)(url, headers=_auth(key))
    else:
        response = getattr(client, method)(
            url, body, content_type="application/json", headers=_auth(key)
        )
    assert response.status_code == 400, response.content
    assert field in response.json() and isinstance(response.json()[field], list)


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("post", "/api/v1/tenants/", {"slug": "acme"}, "already exists"),
        ("post", "/api/v1/tenants/acme/connectors/", {"kind": "nope"}, "nope"),
        ("post", "/api/v1/tenants/acme/connectors/", {"kind": "echo", "slug": "echo"}, "exists"),
        ("post", "/api/v1/tenants/acme/members/", {"email": "ALICE@example.com"}, "already"),
        ("patch", "/api/v1/connectors/{books}/", {"settings": {"writes": True}}, "unknown"),
        ("patch", "/api/v1/connectors/{books}/", {"settings": {"writes_allowed": 1}}, "true or"),
        ("patch", "/api/v1/tenants/acme/members/{alice_membership}/", {"role": "member"}, "admin"),
    ],
)
def test_refusals_of_the_services_are_400_with_a_detail(client, world, method, path, body, message):
    world.users["alice"].email = "alice@example.com"
    world.users["alice"].save()
    _, key = api_key_create(user=world.users["olga"], name="ops")
    url = path.format(books=world.books.pk, alice_membership=world.memberships["alice"].pk)
    response = getattr(client, method)(
        url, body, content_type="application/json", headers=_auth(key)
    )
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]


def test_connector_settings_and_writes_allowed_round_trip(client, world):
    _, key = api_key_create(user=world.users["alice"], name="ops")
    url = f"/api/v1/connectors/{world.books.pk}/"
    changed = client.patch(
        url,
        {"name": "Books", "settings": {"writes_allowed": True}},
        content_type="application/json",
        headers=_auth(key),
    )
    assert changed.status_code == 200
    body = client.get(url, headers=_auth(key)).json()
    assert body["name"] == "Books" and body["settings"] == {"writes_allowed": True}
    assert body["stats"]["upstream"] == {"active": 2}
    assert body["url"].endswith("/t/acme/books/mcp")


def test_the_trace_endpoint_names_where_an_attempt_stopped(client, world):
    _, key = api_key_create(user=world.users["alice"], name="ops")
    event_record(
        kind="mcp.unauthenticated",
        outcome="denied",
        connector=world.echo,
        ip="10.9.8.7",
        status_code=401,
        detail={"error": "unauthorized"},
    )
    attempts = client.get(f"/api/v1/connectors/{world.echo.pk}/trace/", headers=_auth(key)).json()[
        "results"
    ]
    stopped = [a for a in attempts if not a["client_id"]]
    assert stopped[0]["stopped_at"] == "probe"
    assert "never fetched protected-resource metadata" in stopped[0]["hint"]
