"""The write gate (connectors/write_gate.py) on its own server: a tool counts as a write unless
it says readOnlyHint, tools added or removed after the first call are judged as they are now,
and a call does not rebuild every tool's listing to judge one tool."""

import anyio
import pytest
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from connectors.write_gate import WriteGatedServer


def _server() -> WriteGatedServer:
    server = WriteGatedServer("gate")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def look() -> str:
        return "seen"

    @server.tool()  # no annotations: a write
    def change() -> str:
        return "changed"

    return server


def _call(server: WriteGatedServer, name: str):
    """tools/call without a connector context: writes are not allowed."""
    return anyio.run(server.call_tool, name, {})


def _text(result) -> str:
    return result.content[0].text


def test_a_read_only_tool_runs_and_a_write_is_refused():
    server = _server()
    assert _text(_call(server, "look")) == "seen"
    with pytest.raises(ToolError, match="read-only"):
        _call(server, "change")
    with pytest.raises(ToolError, match="Unknown tool"):
        _call(server, "missing")


def test_tools_added_or_removed_after_a_call_are_judged_as_they_are_now():
    server = _server()
    assert _text(_call(server, "look")) == "seen"

    @server.tool()
    def sneak() -> str:
        return "changed"

    with pytest.raises(ToolError, match="read-only"):
        _call(server, "sneak")
    server.remove_tool("look")
    server.add_tool(lambda: "changed", name="look")  # the same name, now a write
    with pytest.raises(ToolError, match="read-only"):
        _call(server, "look")


def test_calls_do_not_list_every_tool_each_time(monkeypatch):
    server = _server()
    listings = []
    list_tools = server.list_tools

    async def counted():
        listings.append(1)
        return await list_tools()

    monkeypatch.setattr(server, "list_tools", counted)
    for _ in range(3):
        assert _text(_call(server, "look")) == "seen"
        with pytest.raises(ToolError, match="read-only"):
            _call(server, "change")
    assert len(listings) == 1
