"""A QuickBooks connector's health counts what the connector or Intuit did wrong, and names it;
a member's bad query or a call the tool policy refused does not count."""

import time

import pytest

from events.models import Event
from tenants.services import connector_update
from tests.support.quickbooks import call
from upstream.health import connector_stats

pytestmark = pytest.mark.django_db(transaction=True)


def _failed_calls(connector, n: int) -> list[Event]:
    """The gateway records a call after answering it: wait for the rows."""
    for _ in range(200):
        rows = list(Event.objects.filter(connector=connector, kind="mcp.call", outcome="error"))
        if len(rows) >= n:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"expected {n} failed calls, found {len(rows)}")


def _stats(connector):
    connector.refresh_from_db()
    return connector_stats([connector])[connector.pk]


def test_a_members_refused_drop_query_does_not_make_the_connector_unhealthy(qbo_connector):
    connector = qbo_connector["connector"]
    refused = call(qbo_connector, "query", {"query": "DROP TABLE Customer"})
    assert refused["isError"] is True
    assert "Invalid query" in refused["content"][0]["text"]
    # Arguments that fail the tool's schema and a record that does not exist are the caller's.
    assert call(qbo_connector, "query", {"query": 7, "max_results": "many"})["isError"] is True
    assert call(qbo_connector, "get_record", {"entity": "Customer", "id": "999999"})["isError"]

    events = _failed_calls(connector, 3)
    assert {e.detail["cause"] for e in events} == {"input"}
    stats = _stats(connector)
    assert stats.errors_24h == 3  # the clients saw them, and the count says so
    assert (stats.health, stats.health_label, stats.reasons) == ("ok", "Healthy", [])


def test_a_call_the_tool_policy_refuses_does_not_count(qbo_connector):
    connector = qbo_connector["connector"]
    connector_update(connector=connector, tool_policy={"off": ["company_info"]})
    assert call(qbo_connector, "company_info")["isError"] is True

    assert _failed_calls(connector, 1)[0].detail["cause"] == "refused"
    assert _stats(connector).health == "ok"


def test_intuit_failing_is_named_with_its_status(qbo_connector):
    connector = qbo_connector["connector"]
    qbo_connector["emulator"].inject_fault("companyinfo", status=502, count=None)
    try:
        for _ in range(2):
            result = call(qbo_connector, "company_info")
            assert result["isError"] is True
            assert "unavailable" in result["content"][0]["text"]
    finally:
        qbo_connector["emulator"].faults.clear()

    events = _failed_calls(connector, 2)
    assert {e.detail["cause"] for e in events} == {"upstream"}
    stats = _stats(connector)
    assert stats.health_label == "Needs attention"
    assert stats.reasons == ["Upstream errors: 2 in the last hour (502 from QuickBooks)"]


def test_only_recent_upstream_errors_count(qbo_connector):
    connector = qbo_connector["connector"]
    qbo_connector["emulator"].inject_fault("companyinfo", status=503, count=None)
    try:
        call(qbo_connector, "company_info")
    finally:
        qbo_connector["emulator"].faults.clear()
    event = _failed_calls(connector, 1)[0]
    assert _stats(connector).health == "warning"

    Event.objects.filter(pk=event.pk).update(created=event.created.replace(year=2020))
    assert _stats(connector).health == "ok"
