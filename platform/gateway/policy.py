"""The connector's tool policy (tenants.policy), applied by the gateway to every kind.

``install_tool_policy`` puts two hooks on each kind's MCPServer when the gateway starts, so no
kind has to do anything and a kind whose tools are only known per request (a tool source, a
remote MCP server) is covered like the others:

- ``tools/list`` passes through a server middleware (the SDK's public ``middleware`` list, the
  hook it offers "to observe, refuse, or rewrite messages") that drops what the caller may not
  call from the list the kind produced.
- ``tools/call`` goes through a wrapper around the server's ``tools/call`` handler that answers
  a refused call with a tool error saying why, before the kind sees it. It wraps the handler
  rather than short-circuiting in a middleware because the SDK serializes a handler's result
  into the envelope each protocol version needs (``resultType``, the server-info stamp); a
  middleware that short-circuits has to build that itself. The wrapper is registered through
  the low-level server's public ``add_request_handler``, reached through the MCPServer's
  ``_lowlevel_server`` (the SDK offers no public accessor in mcp 2.3).

The write gate (connectors.write_gate) still applies inside a kind's server; a tool is listed
and callable only where both allow it.
"""

from typing import Any

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult, TextContent

from connectors.base import REFUSED, SCOPE_KEY
from tenants.policy import tool_refusal

POLICY_KEY = "platform.tool_policy"


def _scope(ctx: ServerRequestContext[Any, Any]) -> dict:
    request = getattr(ctx, "request", None)
    return getattr(request, "scope", None) or {}


def _refusal(ctx: ServerRequestContext[Any, Any], tool: str) -> str | None:
    scope = _scope(ctx)
    policy, context = scope.get(POLICY_KEY), scope.get(SCOPE_KEY)
    if not policy or context is None:
        return None
    reason = tool_refusal(policy, role=context.role, tool=tool)
    if reason is not None:
        context.notes[REFUSED] = reason  # the audit record says "denied"
    return reason


async def _filter_tool_list(ctx: ServerRequestContext[Any, Any], call_next: CallNext):
    result = await call_next(ctx)
    if ctx.method != "tools/list" or not isinstance(result, dict):
        return result
    scope = _scope(ctx)
    policy, context = scope.get(POLICY_KEY), scope.get(SCOPE_KEY)
    if not policy or context is None:
        return result
    # The result is already the wire form (camelCase keys): filter it as such.
    allowed = [
        t
        for t in result.get("tools", [])
        if tool_refusal(policy, role=context.role, tool=str(t.get("name", ""))) is None
    ]
    return {**result, "tools": allowed}


def install_tool_policy(server: MCPServer) -> None:
    """Apply connectors' tool policies to ``server`` (once; later calls change nothing)."""
    if _filter_tool_list in server.middleware:
        return
    server.middleware.append(_filter_tool_list)
    lowlevel = server._lowlevel_server
    entry = lowlevel.get_request_handler("tools/call")
    if entry is None:
        return
    handler = entry.handler

    async def guarded(ctx: ServerRequestContext[Any, Any], params) -> HandlerResult:
        reason = _refusal(ctx, params.name)
        if reason is not None:
            return CallToolResult(content=[TextContent(type="text", text=reason)], is_error=True)
        return await handler(ctx, params)

    lowlevel.add_request_handler("tools/call", entry.params_type, guarded)
