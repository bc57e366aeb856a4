"""Fixtures: the Intuit emulator served over real HTTP, clients pointed at it, and a live
platform with a QuickBooks connector.

`qbo_emulator` is the one to use: one server per test session, its state reset before each test,
so every test starts with no grants, no faults, Intuit's default settings and a fresh clock.
`qbo_connector` adds the platform: bob's connection to the emulator's company and an MCP token;
`call` and `list_tools` talk to the connector over real HTTP.
"""

from __future__ import annotations

import pytest

from connectors.quickbooks import client as qbo
from tests.support.emulator import RunningEmulator
from tests.support.flow import OAuthClient, mcp_post
from tests.support.oauth import Browser


@pytest.fixture
def qbo_endpoints(qbo_emulator: RunningEmulator) -> qbo.IntuitEndpoints:
    return qbo.load_endpoints(qbo_emulator.base_url)


@pytest.fixture
def qbo_oauth(qbo_emulator: RunningEmulator, qbo_endpoints) -> qbo.IntuitOAuthClient:
    """An OAuth client for the emulator's app registration, retrying without pauses."""
    return qbo.IntuitOAuthClient(
        qbo_endpoints,
        client_id=qbo_emulator.client_id,
        client_secret=qbo_emulator.client_secret,
        retry_backoff=0,
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def qbo_connector(live_url, acme, qbo_emulator, settings):
    """bob's per-user QuickBooks connection (made directly at the emulator) and an MCP token."""
    from django.contrib.auth.models import User

    from tenants.services import connector_create
    from upstream import clock

    qbo_emulator.point_platform_at(settings)
    clock.reset()
    connector = connector_create(tenant=acme["tenant"], kind="quickbooks", slug="qbo")
    connection, issued = qbo_emulator.store_connection(
        connector=connector, user=User.objects.get(username="bob")
    )
    client = OAuthClient.register(live_url)
    tokens = client.tokens(Browser("bob", "bob-pass-123"), connector.url)
    yield {
        "connector": connector,
        "connection": connection,
        "token": tokens["access_token"],
        "emulator": qbo_emulator.emulator,
        "issued": issued,
    }
    clock.reset()


def _rpc(ctx, method: str, params: dict | None = None) -> dict:
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    response = mcp_post(ctx["connector"].url, ctx["token"], payload, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "result" in body, body
    return body["result"]


def call(ctx, tool="company_info", arguments=None):
    """tools/call over HTTP; the JSON-RPC result (content, structuredContent, isError)."""
    return _rpc(ctx, "tools/call", {"name": tool, "arguments": arguments or {}})


def list_tools(ctx) -> dict[str, dict]:
    """tools/list over HTTP, by tool name."""
    return {tool["name"]: tool for tool in _rpc(ctx, "tools/list")["tools"]}


def advance(ctx, seconds):
    """Move Intuit's clock and ours together."""
    from upstream import clock

    ctx["emulator"].clock.advance(seconds)
    clock.advance(seconds)
