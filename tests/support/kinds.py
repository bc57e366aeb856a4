"""A test-only connector kind with real tools that read the request's tool context."""

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel

from connectors.base import ConnectorKind, tool_context


class Caller(BaseModel):
    tenant: str
    connector: str
    user: str
    client_id: str


def _build_server() -> MCPServer:
    server = MCPServer("echo", instructions="Test connector: echoes and reports who is calling.")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def whoami(ctx: Context) -> Caller:
        """Say which tenant, connector and user this call runs for."""
        context = tool_context(ctx)
        return Caller(
            tenant=context.tenant_slug,
            connector=context.connector_slug,
            user=context.username,
            client_id=context.client_id,
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
)
