"""connection_status: the company and the health of the connection, answered even when the
connection is gone, with the link that restores it."""

from datetime import datetime

import pytest

from tests.support.quickbooks import advance, call
from upstream import clock
from upstream.models import UpstreamConnection

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = 3600


def status(ctx):
    result = call(ctx, "connection_status")
    assert not result["isError"], result["content"][0]["text"]
    return result["structuredContent"]


def test_connection_status_of_a_healthy_connection(qbo_connector, live_url):
    ctx = qbo_connector
    realm = ctx["issued"]["realmId"]
    answer = status(ctx)
    assert answer["connected"] is True
    assert answer["company_name"] == ctx["emulator"].company(realm).name
    assert answer["realm_id"] == realm
    assert answer["connector"] == "qbo" and answer["mode"] == "per_user"
    assert answer["writes_allowed"] is False
    assert (
        answer["reconnect_url"] == f"{live_url}/dashboard/connectors/{ctx['connector'].pk}/connect"
    )
    health = answer["health"]
    assert health["status"] == "active" and health["last_error"] is None
    expires = datetime.fromisoformat(health["access_token_expires_at"])
    assert (expires - clock.now()).total_seconds() > 50 * 60

    # An expired access token is refreshed by the check itself, and the answer says so.
    first_refresh = datetime.fromisoformat(health["last_refresh_at"])
    advance(ctx, HOUR + 60)
    later = status(ctx)
    assert later["connected"] and later["health"]["status"] == "active"
    assert datetime.fromisoformat(later["health"]["last_refresh_at"]) > first_refresh
    assert datetime.fromisoformat(later["health"]["access_token_expires_at"]) > clock.now()


def test_connection_status_when_the_company_disconnected_the_app(qbo_connector, live_url):
    ctx = qbo_connector
    emulator = ctx["emulator"]
    emulator.disconnect(ctx["issued"]["realmId"])
    advance(ctx, HOUR + 60)
    reconnect = f"{live_url}/dashboard/connectors/{ctx['connector'].pk}/connect"

    # The check finds out, and reports it instead of failing.
    answer = status(ctx)
    assert answer["connected"] is False
    assert answer["health"]["status"] == "needs_reauth"
    assert "invalid_grant" in answer["health"]["last_error"]
    assert answer["reconnect_url"] == reconnect and reconnect in answer["advice"]
    assert answer["realm_id"] == ctx["issued"]["realmId"]

    # Once the connection is known to be dead, no call goes to Intuit at all.
    counters = emulator.counters_snapshot()
    again = status(ctx)
    assert again["health"]["status"] == "needs_reauth" and reconnect in again["advice"]
    assert emulator.counters_snapshot() == counters
    # The other tools fail with the same link.
    failed = call(ctx, "company_info")
    assert failed["isError"] and reconnect in failed["content"][0]["text"]


def test_connection_status_without_a_connection(qbo_connector):
    ctx = qbo_connector
    UpstreamConnection.objects.filter(pk=ctx["connection"].pk).delete()
    answer = status(ctx)
    assert answer["health"] == {
        "status": "not_connected",
        "access_token_expires_at": None,
        "refresh_token_expires_at": None,
        "last_refresh_at": None,
        "last_used_at": None,
        "last_error": None,
        "failure_count": 0,
    }
    assert answer["connected"] is False and answer["company_name"] is None
    assert "connect one at" in answer["advice"]
