"""Fixtures: the Intuit emulator served over real HTTP, and clients pointed at it.

`qbo_emulator` is the one to use: one server per test session, its state reset before each test,
so every test starts with no grants, no faults, Intuit's default settings and a fresh clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from connectors.quickbooks import client as qbo
from connectors.quickbooks.emulator import ACCOUNTING_SCOPE, Emulator, create_app
from tests.support.live import LiveServer

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
