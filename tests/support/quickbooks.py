"""Talking to a QuickBooks connector over real HTTP (the ``qbo_connector`` fixture's ``ctx``)."""

from __future__ import annotations

from tests.support.flow import mcp_post


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
