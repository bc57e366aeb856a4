"""The Intuit emulator as tests use it: served over real HTTP, and helpers to point the
platform at it and to connect companies without the browser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.base import UpstreamTokens
from connectors.quickbooks.emulator import ACCOUNTING_SCOPE, Emulator

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

    def point_platform_at(self, settings) -> None:
        """Make the platform (django's ``settings`` fixture) use this emulator as Intuit."""
        settings.QUICKBOOKS_ENVIRONMENT = self.base_url
        settings.QUICKBOOKS_CLIENT_ID = self.client_id
        settings.QUICKBOOKS_CLIENT_SECRET = self.client_secret

    def store_connection(self, *, connector, user=None):
        """A new company at the emulator, connected to ``connector`` (for ``user``, or shared)
        as if through the browser hop; returns the UpstreamConnection and Intuit's answer."""
        from upstream.services import upstream_connection_store

        issued = self.connect()
        connection = upstream_connection_store(
            connector=connector,
            user=user,
            provider="quickbooks",
            tokens=UpstreamTokens(
                access_token=issued["access_token"],
                refresh_token=issued["refresh_token"],
                expires_in=issued["expires_in"],
                refresh_expires_in=issued["x_refresh_token_expires_in"],
                external_account_id=issued["realmId"],
            ),
        )
        return connection, issued
