"""What tools use: the upstream access token of the connection a tool call runs with."""

from asgiref.sync import sync_to_async

from connectors.base import ToolContext, UpstreamReauthRequired, UpstreamUnavailable
from tenants.models import Connector
from upstream.models import UpstreamConnection
from upstream.services import (
    AccessGrant,
    connector_connect_url,
    reconnect_url,
    upstream_access,
    upstream_connection_for,
    upstream_connection_refresh,
)


class UpstreamNotConnected(Exception):
    """No usable upstream connection; the message says how to restore it (for the user)."""


def _grant(context: ToolContext, *, force_refresh: bool) -> AccessGrant:
    connector = Connector.objects.get(pk=context.connector_id)
    connection = upstream_connection_for(connector=connector, user_id=context.user_id)
    if connection is None:
        raise UpstreamNotConnected(
            "This connector has no upstream account connected. "
            f"Connect it at {connector_connect_url(connector.pk)}"
        )
    if connection.status in (
        UpstreamConnection.Status.NEEDS_REAUTH,
        UpstreamConnection.Status.REVOKED,
    ):
        raise UpstreamNotConnected(
            "The upstream account must be reconnected "
            f"({connection.last_error or connection.status}). Reconnect at "
            f"{reconnect_url(connection)}"
        )
    try:
        if force_refresh:
            upstream_connection_refresh(connection_id=connection.pk, force=True)
        return upstream_access(connection_id=connection.pk)
    except UpstreamReauthRequired as exc:
        raise UpstreamNotConnected(
            f"The upstream account must be reconnected ({exc}). Reconnect at "
            f"{reconnect_url(connection)}"
        ) from None
    except UpstreamUnavailable as exc:
        raise UpstreamUnavailable(
            f"The upstream service is unavailable right now: {exc}", retry_after=exc.retry_after
        ) from None


upstream_grant = sync_to_async(_grant, thread_sensitive=False)


async def upstream_grant_for(context: ToolContext, *, force_refresh: bool = False) -> AccessGrant:
    """The access token for this call's connection, refreshed (under the lease) when due."""
    return await upstream_grant(context, force_refresh=force_refresh)


async def upstream_mark_reauth(context: ToolContext, reason: str) -> None:
    """The provider keeps refusing a fresh token: the grant is gone, tell the user and admins."""
    await sync_to_async(_mark_reauth, thread_sensitive=False)(context, reason)


def _mark_reauth(context: ToolContext, reason: str) -> None:
    from upstream.services import upstream_connection_notify_reauth

    connector = Connector.objects.get(pk=context.connector_id)
    connection = upstream_connection_for(connector=connector, user_id=context.user_id)
    if connection is None:
        return
    UpstreamConnection.objects.filter(pk=connection.pk).update(
        status=UpstreamConnection.Status.NEEDS_REAUTH, last_error=reason[:500]
    )
    upstream_connection_notify_reauth(connection_id=connection.pk)
