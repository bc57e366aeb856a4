"""Fixtures: the Intuit emulator served over real HTTP, clients pointed at it, and a live
platform with a QuickBooks connector.

`qbo_emulator` is the one to use: one server per test session, its state reset before each test,
so every test starts with no grants, no faults, Intuit's default settings and a fresh clock.
`qbo_connector` adds the platform: bob's connection to the emulator's company and an MCP token;
tests.support.quickbooks's `call` and `list_tools` talk to the connector over real HTTP.
"""

from __future__ import annotations

import pytest

from connectors.quickbooks import client as qbo
from tests.support.emulator import RunningEmulator
from tests.support.flow import OAuthClient
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
