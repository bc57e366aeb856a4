"""A remote_mcp connector's health: an upstream answering 502 is named with its status and
URL; an upstream tool's own error answer, or a tool the caller may not use, is not counted."""

import time

import pytest
from starlette.responses import PlainTextResponse

from events.models import Event
from tests.support.flow import OAuthClient, mcp_post
from tests.support.live import LiveServer
from tests.support.oauth import Browser
from tests.support.upstreams import start_upstream
from upstream.health import connector_stats

pytestmark = pytest.mark.django_db(transaction=True)


async def _bad_gateway(scope, receive, send):
    if scope["type"] == "http":
        await PlainTextResponse("bad gateway", status_code=502)(scope, receive, send)


@pytest.fixture
def failing_upstream():
    server = LiveServer()
    server.start(_bad_gateway, lifespan="off")
    yield f"{server.url}/mcp"
    server.stop()


@pytest.fixture
def open_upstream():
    upstream = start_upstream("open")
    yield upstream
    upstream.stop()


def _connector(acme, slug, **settings):
    from tenants.services import connector_create

    return connector_create(
        tenant=acme["tenant"], kind="remote_mcp", slug=slug, mode="per_user", settings=settings
    )


def _call(connector, live_url, tool, arguments=None):
    token = OAuthClient.register(live_url).tokens(Browser("bob", "bob-pass-123"), connector.url)
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments or {}},
    }
    response = mcp_post(connector.url, token["access_token"], payload, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _failed_call(connector) -> Event:
    for _ in range(200):
        event = Event.objects.filter(connector=connector, kind="mcp.call", outcome="error").first()
        if event is not None:
            return event
        time.sleep(0.05)
    raise AssertionError("no failed call recorded")


def test_an_upstream_502_is_named_with_its_url(live_url, acme, failing_upstream):
    connector = _connector(acme, "down", upstream_url=failing_upstream, allowed_tools="whoami")
    assert connector_stats([connector])[connector.pk].health == "ok"

    result = _call(connector, live_url, "whoami")

    assert result["isError"] is True
    assert _failed_call(connector).detail["cause"] == "upstream"
    stats = connector_stats([connector])[connector.pk]
    assert stats.health_label == "Needs attention"
    assert stats.reasons == [f"Upstream errors: 1 in the last hour (502 from {failing_upstream})"]


def test_an_upstream_tools_own_error_and_a_refused_tool_do_not_count(live_url, acme, open_upstream):
    connector = _connector(acme, "notes", upstream_url=open_upstream.url)
    failed = _call(connector, live_url, "fail", {"message": "no such note"})
    assert failed["isError"] is True and "no such note" in failed["content"][0]["text"]
    assert _failed_call(connector).detail["cause"] == "tool"
    Event.objects.filter(connector=connector).delete()

    refused = _call(connector, live_url, "add_note", {"text": "x"})  # not read-only: off
    assert refused["isError"] is True
    assert _failed_call(connector).detail["cause"] == "refused"

    stats = connector_stats([connector])[connector.pk]
    assert (stats.health, stats.reasons) == ("ok", [])
