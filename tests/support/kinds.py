"""Test-only connector kinds (installed by tests/conftest.py, never by the platform's settings).

``echo_kind`` is the README's "Writing a connector kind" example: tools on an MCPServer, a
settings schema, an environment setting, no upstream. ``catalog_kind`` uses a tool source:
its tool list comes from each connector's settings, per request. ``conformance_kind`` serves
the fixture of the official MCP conformance suite (tests/support/conformance_server.py).
"""

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, Tool, ToolAnnotations
from pydantic import BaseModel

from connectors.base import (
    ChoiceSetting,
    ConnectorKind,
    EnvSetting,
    SecretSetting,
    SettingsSchema,
    TextSetting,
    ToolContext,
    UrlSetting,
    tool_context,
)
from tests.support.conformance_server import build_conformance_server

GREETING = EnvSetting("ECHO_GREETING", default="Hello", help="How whoami greets the caller.")


class Caller(BaseModel):
    tenant: str
    connector: str
    user: str
    client_id: str
    greeting: str
    homepage: str
    api_key_length: int


def _build_server() -> MCPServer:
    server = MCPServer("echo", instructions="Test connector: echoes and reports who is calling.")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def echo(text: str, ctx: Context) -> str:
        """Return the text unchanged (upper case where the connector's style is loud)."""
        loud = tool_context(ctx).connector_settings.get("style") == "loud"
        return text.upper() if loud else text

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def whoami(ctx: Context) -> Caller:
        """Say which tenant, connector and user this call runs for."""
        context = tool_context(ctx)
        return Caller(
            tenant=context.tenant_slug,
            connector=context.connector_slug,
            user=context.username,
            client_id=context.client_id,
            greeting=f"{GREETING.value()}, {context.username}",
            homepage=context.connector_settings.get("homepage", ""),
            api_key_length=len(context.connector_settings.get("api_key") or ""),
        )

    @server.tool()
    def fail(message: str) -> str:
        """Always fails with the given message (a tool error, not a protocol error)."""
        raise ToolError(message)

    return server


echo_kind = ConnectorKind(
    slug="echo",
    title="Echo",
    description="Test connector kind",
    build_server=_build_server,
    settings_schema=SettingsSchema(
        fields=(
            ChoiceSetting("style", choices=(("plain", "Plain"), ("loud", "Loud")), default="plain"),
            UrlSetting("homepage", help="Shown by whoami.", allow_http=True),
            SecretSetting("api_key", help="Never shown again once saved."),
        )
    ),
    env=(GREETING,),
)


class Catalog:
    """One tool per name in the connector's ``tools`` setting: the list differs per connector."""

    @staticmethod
    def _names(context: ToolContext) -> list[str]:
        return [n.strip() for n in context.connector_settings.get("tools", "").split(",") if n]

    async def list_tools(self, context: ToolContext) -> list[Tool]:
        return [
            Tool(
                name=name,
                description=f"The {name} tool of connector {context.connector_slug}",
                input_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
            )
            for name in self._names(context)
        ]

    async def call_tool(self, context: ToolContext, name: str, arguments: dict) -> CallToolResult:
        if name not in self._names(context):
            text = TextContent(type="text", text=f"Unknown tool: {name}")
            return CallToolResult(content=[text], is_error=True)
        text = f"{name}({arguments.get('n')}) for {context.username} on {context.connector_slug}"
        return CallToolResult(content=[TextContent(type="text", text=text)])


catalog_kind = ConnectorKind(
    slug="catalog",
    title="Catalog",
    description="Test connector kind with a tool source",
    tool_source=Catalog,
    settings_schema=SettingsSchema(fields=(TextSetting("tools", default="alpha,beta"),)),
)


conformance_kind = ConnectorKind(
    slug="conformance",
    title="Conformance fixture",
    description="The tools, resources and prompts the official MCP conformance suite asks for",
    build_server=build_conformance_server,
)
