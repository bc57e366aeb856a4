"""Fixtures: the Intuit emulator served over real HTTP, clients pointed at it, and a live
platform with a QuickBooks connector.

`qbo_emulator` is the one to use: one server per test session, its state reset before each test,
so every test starts with no grants, no faults, Intuit's default settings and a fresh clock.
`qbo_connector` adds the platform: bob's connection to the emulator's company and an MCP token;
`call` and `list_tools` talk to the connector over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from connectors.base import UpstreamTokens
from connectors.quickbooks import client as qbo
from connectors.quickbooks.emulator import ACCOUNTING_SCOPE, Emulator, create_app
from tests.support.flow import OAuthClient, mcp_post
from tests.support.live import LiveServer
from tests.support.oauth import Browser

EMULATOR_CLIENT_ID = "test-intuit-client-id"
EMULATOR_CLIENT_SECRET = "test-intuit-client-secret"
EMULATOR_REDIRECT_URI = "http://127.0.0.1:8000/upstream/quickbooks/callback"


@dataclass
class RunningEmulator:
    """A live emulator: where it is, its in-process state, and the app registration it knows."""

    base_url: str
    emulator: Emulator
    client_id: str = EMULATOR_CLIENT_ID
    client_secret: str = EMULATOR_CLIENT_SECRET
    redirect_uri: str = EMULATOR_REDIRECT_URI

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v3"

    def connect(
        self, realm_id: str | None = None, scopes: tuple[str, ...] = (ACCOUNTING_SCOPE,)
    ) -> dict[str, Any]:
        """A connected company without the browser: Intuit's token response plus `realmId`."""
        return self.emulator.issue_tokens(realm_id, scopes=scopes)


@pytest.fixture(scope="session")
def qbo_emulator_server() -> Iterator[RunningEmulator]:
    server = LiveServer()
    app = create_app(
        base_url=server.url,
        client_id=EMULATOR_CLIENT_ID,
        client_secret=EMULATOR_CLIENT_SECRET,
        redirect_uris=[EMULATOR_REDIRECT_URI],
    )
    server.start(app, lifespan="off")
    try:
        yield RunningEmulator(base_url=server.url, emulator=app.state.emulator)
    finally:
        server.stop()


@pytest.fixture
def qbo_emulator(qbo_emulator_server: RunningEmulator) -> RunningEmulator:
    """The live emulator, reset to a clean state for this test."""
    qbo_emulator_server.emulator.wait_idle()
    qbo_emulator_server.emulator.reset()
    qbo.clear_endpoint_cache()
    return qbo_emulator_server


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
    from upstream import clock, services

    settings.QUICKBOOKS_ENVIRONMENT = qbo_emulator.base_url
    settings.QUICKBOOKS_CLIENT_ID = qbo_emulator.client_id
    settings.QUICKBOOKS_CLIENT_SECRET = qbo_emulator.client_secret
    clock.reset()
    connector = connector_create(tenant=acme["tenant"], kind="quickbooks", slug="qbo")
    issued = qbo_emulator.connect()
    connection = services.upstream_connection_store(
        connector=connector,
        user=User.objects.get(username="bob"),
        provider="quickbooks",
        tokens=UpstreamTokens(
            access_token=issued["access_token"],
            refresh_token=issued["refresh_token"],
            expires_in=issued["expires_in"],
            refresh_expires_in=issued["x_refresh_token_expires_in"],
            external_account_id=issued["realmId"],
        ),
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
