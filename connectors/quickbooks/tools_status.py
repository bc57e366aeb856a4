"""connection_status: which company this connector reaches, and whether it still can.

It answers even when the connection is gone (needs_reauth, revoked, never made): then it says
so, with the link that restores it, instead of failing like the other tools.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from connectors.base import ToolContext, UpstreamStatus, tool_context
from connectors.quickbooks.tools import READ_ONLY, with_company
from connectors.write_gate import writes_allowed

UNUSABLE = ("needs_reauth", "revoked")


class ConnectionHealth(BaseModel):
    status: Literal["active", "refreshing", "error", "needs_reauth", "revoked", "not_connected"]
    access_token_expires_at: datetime | None = None
    refresh_token_expires_at: datetime | None = None
    last_refresh_at: datetime | None = None
    last_used_at: datetime | None = None
    last_error: str | None = None
    failure_count: int = 0


class ConnectionStatus(BaseModel):
    connected: bool = Field(description="True when QuickBooks answered for this connection now.")
    company_name: str | None = None
    realm_id: str | None = Field(None, description="QuickBooks company id (realmId).")
    connector: str
    mode: str = Field(description="per_user: each member connects their own; shared: one.")
    writes_allowed: bool
    health: ConnectionHealth
    api_error: str | None = Field(None, description="Why QuickBooks did not answer, if it did not.")
    reconnect_url: str = Field(description="Where a person (re)connects the company.")
    advice: str


def _health(status: UpstreamStatus) -> ConnectionHealth:
    return ConnectionHealth(
        status=status.status,
        access_token_expires_at=status.access_expires_at,
        refresh_token_expires_at=status.refresh_expires_at,
        last_refresh_at=status.last_refresh_at,
        last_used_at=status.last_used_at,
        last_error=status.last_error or None,
        failure_count=status.failure_count,
    )


def _advice(health: ConnectionHealth, connected: bool, context: ToolContext, url: str) -> str:
    who = "A tenant admin must" if context.connector_mode == "shared" else "The user must"
    if health.status == "not_connected":
        return f"No QuickBooks company is connected yet. {who} connect one at {url}"
    if health.status in UNUSABLE:
        return f"QuickBooks no longer accepts this connection. {who} reconnect it at {url}"
    if connected:
        return "The connection works."
    return "QuickBooks did not answer just now; the connection is kept. Try again shortly."


def register(server: MCPServer) -> None:
    @server.tool(title="Connection status", annotations=READ_ONLY)
    async def connection_status(ctx: Context) -> ConnectionStatus:
        """Which QuickBooks company this connector reaches and whether the connection works:
        status, access-token expiry, last refresh, last error, and the link to reconnect.
        Call it when another tool reports a connection problem; it answers even then."""
        context = tool_context(ctx)
        stored = await context.upstream.status()
        company_name = stored.account_name or None
        connected, api_error = False, None
        if stored.usable:
            try:
                info = await with_company(ctx, lambda api: api.company_info())
            except ToolError as exc:
                api_error = str(exc)
            else:
                connected, company_name = True, info.get("CompanyName") or company_name
            # The call may have refreshed the token, or found the grant gone.
            stored = await context.upstream.status()
        health = _health(stored)
        realm_id = stored.account_id or None
        url = context.upstream.reconnect_url
        return ConnectionStatus(
            connected=connected,
            company_name=company_name,
            realm_id=realm_id,
            connector=context.connector_slug,
            mode=context.connector_mode,
            writes_allowed=writes_allowed(context),
            health=health,
            api_error=api_error,
            reconnect_url=url,
            advice=_advice(health, connected, context, url),
        )
