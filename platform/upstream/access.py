"""The upstream handle a tool call gets (connectors.base.UpstreamHandle), backed by the services.

One tool call reads its connection once (one query); a fresh token is used as stored, a due one
is refreshed under the lease by the refresh engine, and last_used_at is written at most once a
minute. Every write goes through upstream.services.
"""

from __future__ import annotations

from config.db import db_sync_to_async
from connectors.base import (
    UpstreamAccess,
    UpstreamNotConnected,
    UpstreamReauthRequired,
    UpstreamStatus,
    UpstreamUnavailable,
)
from upstream.models import UpstreamConnection
from upstream.refresh import upstream_access
from upstream.selectors import UNUSABLE, upstream_connection_of
from upstream.services import connector_connect_url, upstream_connection_mark_reauth


class ConnectionHandle:
    """The connection of one tool call: the member's own (per_user) or the shared one."""

    def __init__(self, *, connector_id: int, connector_mode: str, user_id: int | None):
        self.connector_id = connector_id
        self.owner_id = None if connector_mode == "shared" else user_id
        self.reconnect_url = connector_connect_url(connector_id)
        self._connection_id: int | None = None

    def _connection(self) -> UpstreamConnection | None:
        connection = upstream_connection_of(connector_id=self.connector_id, user_id=self.owner_id)
        if connection is not None:
            self._connection_id = connection.pk
        return connection

    def _access(self, force_refresh: bool) -> UpstreamAccess:
        connection = self._connection()
        if connection is None:
            raise UpstreamNotConnected(
                "This connector has no upstream account connected. "
                f"Connect it at {self.reconnect_url}"
            )
        if connection.status in UNUSABLE:
            raise UpstreamNotConnected(
                "The upstream account must be reconnected "
                f"({connection.last_error or connection.status}). "
                f"Reconnect at {self.reconnect_url}"
            )
        try:
            grant = upstream_access(connection=connection, force_refresh=force_refresh)
        except UpstreamReauthRequired as exc:
            raise UpstreamNotConnected(
                f"The upstream account must be reconnected ({exc}). Reconnect at "
                f"{self.reconnect_url}"
            ) from None
        except UpstreamUnavailable as exc:
            raise UpstreamUnavailable(
                f"The upstream service is unavailable right now: {exc}",
                retry_after=exc.retry_after,
            ) from None
        return UpstreamAccess(
            access_token=grant.access_token,
            account_id=grant.external_account_id,
            account_name=grant.external_account_name,
        )

    async def access(self, *, force_refresh: bool = False) -> UpstreamAccess:
        return await db_sync_to_async(self._access)(force_refresh)

    def _mark_reauth(self, reason: str) -> None:
        connection_id = self._connection_id
        if connection_id is None:
            connection = self._connection()
            if connection is None:
                return
            connection_id = connection.pk
        upstream_connection_mark_reauth(connection_id=connection_id, reason=reason)

    async def mark_reauth(self, reason: str) -> None:
        await db_sync_to_async(self._mark_reauth)(reason)

    def _status(self) -> UpstreamStatus:
        connection = self._connection()
        if connection is None:
            return UpstreamStatus(status="not_connected")
        return UpstreamStatus(
            status=str(connection.status),
            account_id=connection.external_account_id,
            account_name=connection.external_account_name,
            access_expires_at=connection.access_expires_at,
            refresh_expires_at=connection.refresh_expires_at,
            last_refresh_at=connection.last_refresh_at,
            last_used_at=connection.last_used_at,
            last_error=connection.last_error,
            failure_count=connection.failure_count,
        )

    async def status(self) -> UpstreamStatus:
        return await db_sync_to_async(self._status)()
