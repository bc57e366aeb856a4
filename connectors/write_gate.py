"""Write tools exist only for connectors whose settings allow writes.

The SDK's MCPServer keeps one tool list per server, and one server serves every tenant's
connectors of a kind, so which tools a caller may see has to be decided per request, from the
connector the gateway resolved (its ToolContext, on the ASGI scope). Two hooks, both on the
SDK's public surface (mcp 2.3):

- ``tools/list`` passes through a server middleware (``MCPServer.middleware``, "append an async
  (ctx, call_next) callable to observe, refuse, or rewrite messages") that drops write tools
  from the answer. The SDK expects this use: its tool-schema lookup notes that it "also finds a
  tool that middleware hides from the caller".
- ``tools/call`` passes through ``MCPServer.call_tool``, overridden to refuse a hidden tool
  with a ToolError. The SDK turns that into an ``isError`` result through its own path, with
  the envelope every protocol version needs; a middleware that short-circuited would have to
  build that envelope itself. And no tool body has to remember to check.

A tool counts as a write unless its annotations say ``readOnlyHint: true``, so a tool
registered without annotations is hidden from read-only connectors (fail closed).
"""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError

from connectors.base import CAUSE, REFUSED, SCOPE_KEY, WRITES_SETTING, Cause, ToolContext


def writes_allowed(context: ToolContext | None) -> bool:
    """Whether the connector of this call lets its tools change upstream data (off by default)."""
    return context is not None and context.connector_settings.get(WRITES_SETTING) is True


def _context_of(request_context: ServerRequestContext[Any, Any] | None) -> ToolContext | None:
    request = getattr(request_context, "request", None)
    scope = getattr(request, "scope", None) or {}
    return scope.get(SCOPE_KEY)


def _is_read_only(tool: dict[str, Any]) -> bool:
    return (tool.get("annotations") or {}).get("readOnlyHint") is True


class WriteGatedServer(MCPServer):
    """An MCPServer whose write tools are listed and callable only where writes are allowed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.middleware.append(self._hide_write_tools)
        self._read_only: dict[str, bool] | None = None

    def add_tool(self, *args: Any, **kwargs: Any) -> None:
        self._read_only = None
        super().add_tool(*args, **kwargs)

    def remove_tool(self, name: str) -> None:
        self._read_only = None
        super().remove_tool(name)

    async def _read_only_by_name(self) -> dict[str, bool]:
        """Whether each tool says readOnlyHint, by name: worked out on first use and again after
        a tool is added or removed, not on every call (listing builds every tool's model)."""
        known = self._read_only
        if known is None:
            known = {
                tool.name: bool(tool.annotations and tool.annotations.read_only_hint)
                for tool in await self.list_tools()
            }
            self._read_only = known
        return known

    async def _hide_write_tools(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list" or not isinstance(result, dict):
            return result
        if writes_allowed(_context_of(ctx)):
            return result
        # The result is already the wire form (camelCase keys): filter it as such.
        return {**result, "tools": [t for t in result.get("tools", []) if _is_read_only(t)]}

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context | None = None
    ) -> Any:
        try:
            request_context = context.request_context if context is not None else None
        except ValueError:  # a Context made outside a request
            request_context = None
        tool_ctx = _context_of(request_context)
        if not writes_allowed(tool_ctx):
            if (await self._read_only_by_name()).get(name) is False:  # a known write tool
                reason = (
                    f"{name} is not available: this connector is read-only (its settings do not "
                    "allow writes; a tenant admin can turn writes on)"
                )
                if tool_ctx is not None:
                    tool_ctx.notes[REFUSED] = reason  # the audit record says "denied"
                raise ToolError(reason)
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise  # a crash: the connector's own failure (no cause noted)
        except ToolError:
            # Unknown tools, arguments that fail the schema, and what a tool refuses by itself
            # are the caller's to correct; a tool blames the upstream or the connection itself
            # (ToolContext.blame) before raising for those.
            if tool_ctx is not None and CAUSE not in tool_ctx.notes:
                tool_ctx.blame(Cause.INPUT)
            raise
