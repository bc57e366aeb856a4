"""Connector health names its cause: upstream connections to make or restore, per mode and for
every kind that holds them, in words on every dashboard page (no raw status values)."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tenants.models import Tenant
from tenants.services import connector_create, connector_update
from upstream.health import connector_stats, tenant_stats
from upstream.models import UpstreamConnection

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at")]


def _connection(connector, user=None, status=UpstreamConnection.Status.ACTIVE, error=""):
    return UpstreamConnection.objects.create(
        connector=connector,
        user=user,
        provider=connector.kind,
        access_token_encrypted="x",
        refresh_token_encrypted="x",
        access_expires_at=timezone.now() + timedelta(hours=1),
        status=status,
        last_error=error,
    )


def _text(response) -> str:
    """What a person reads on the page: the HTML without its tags and attributes."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def _reasons(connector, user=None):
    connector.refresh_from_db()
    stats = connector_stats([connector], user=user)[connector.pk]
    return stats.health, stats.reasons


@pytest.fixture
def books(acme, settings):
    settings.QUICKBOOKS_CLIENT_ID = settings.QUICKBOOKS_CLIENT_ID or "client"
    return connector_create(tenant=acme["tenant"], kind="quickbooks", slug="books", mode="shared")


def test_shared_quickbooks_not_connected(books):
    assert _reasons(books) == ("warning", ["Shared QuickBooks not connected"])
    shared = _connection(books)
    assert _reasons(books) == ("ok", [])
    shared.status = UpstreamConnection.Status.NEEDS_REAUTH
    shared.save()
    assert _reasons(books) == ("warning", ["Shared QuickBooks must be reconnected"])
    shared.status = UpstreamConnection.Status.ERROR
    shared.last_error = "HTTP 503 from the Intuit token service"
    shared.save()
    assert _reasons(books) == (
        "warning",
        ["Shared QuickBooks connection failing, retrying (HTTP 503 from the Intuit token service)"],
    )
    shared.status = UpstreamConnection.Status.REVOKED
    shared.save()
    assert _reasons(books) == ("warning", ["Shared QuickBooks not connected"])


def test_members_who_must_reconnect_are_counted(books, acme):
    connector_update(connector=books, mode="per_user")
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
    # Per-user: nobody has to connect before using it, so no connection is not a fault.
    assert _reasons(books) == ("ok", [])
    _connection(books, alice, UpstreamConnection.Status.NEEDS_REAUTH)
    bobs = _connection(books, bob, UpstreamConnection.Status.NEEDS_REAUTH)
    assert _reasons(books) == ("warning", ["2 members must reconnect"])
    bobs.status = UpstreamConnection.Status.ACTIVE
    bobs.save()
    assert _reasons(books) == ("warning", ["1 member must reconnect"])
    # A member sees their own connection only.
    assert _reasons(books, user=bob) == ("ok", [])
    assert _reasons(books, user=alice) == ("warning", ["Your QuickBooks must be reconnected"])


def test_a_disabled_connector_is_off_and_a_kind_without_connections_needs_none(books, acme):
    connector_update(connector=books, enabled=False)
    books.refresh_from_db()
    stats = connector_stats([books])[books.pk]
    assert (stats.health, stats.health_label, stats.reasons) == ("off", "Disabled", [])
    assert _reasons(acme["connector"]) == ("ok", [])  # echo holds no upstream connection


def test_the_dashboards_show_the_cause_in_words(books, acme, client):
    User.objects.create_superuser("olga", "olga@example.com", "olga-pass-123")
    connector_update(connector=books, mode="per_user")
    _connection(books, User.objects.get(username="bob"), UpstreamConnection.Status.NEEDS_REAUTH)
    [summary] = tenant_stats(Tenant.objects.filter(slug="acme"))
    assert summary.reasons == ["QuickBooks: 1 member must reconnect"]

    client.login(username="olga", password="olga-pass-123")
    operator = _text(client.get("/dashboard/"))
    assert "needs_reauth" not in operator
    assert "1 needs reconnect" in operator and "QuickBooks: 1 member must reconnect" in operator
    assert "Needs attention" in operator

    client.login(username="alice", password="alice-pass-123")
    tenant = _text(client.get("/dashboard/t/acme/"))
    assert "1 member must reconnect" in tenant and "needs_reauth" not in tenant
    page = _text(client.get(f"/dashboard/connectors/{books.pk}/"))
    assert "1 member must reconnect" in page
    status = client.get(f"/dashboard/connectors/{books.pk}/status.json").json()
    assert status["health_label"] == "Needs attention"
    assert status["reasons"] == ["1 member must reconnect"]
