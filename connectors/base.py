"""What a connector kind declares, and the registry the platform finds kinds in.

A kind is provider code (``connectors/<kind>/``) behind this small interface: its tools (an
``mcp`` SDK server, one per kind, serving every tenant's connectors of that kind) and what it
needs from an upstream OAuth provider. The platform stays provider-neutral.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from mcp.server.mcpserver import Context


@dataclass(frozen=True)
class UpstreamOAuth:
    """An upstream provider this kind must hold tokens for (the hop inside /authorize)."""

    provider: str
    scopes: tuple[str, ...]


@dataclass
class ConnectorKind:
    slug: str
    title: str
    description: str
    build_server: Callable[[], MCPServer]
    upstream: UpstreamOAuth | None = None
    default_settings: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def server(self) -> MCPServer:
        return self.build_server()


@dataclass(frozen=True)
class ToolContext:
    """Who and what a tool call runs for; set by the gateway after the bearer check."""

    tenant_id: int
    tenant_slug: str
    connector_id: int
    connector_slug: str
    connector_settings: dict[str, Any]
    connector_mode: str
    user_id: int
    username: str
    client_id: str
    token_id: int


SCOPE_KEY = "platform.tool_context"


def tool_context(ctx: Context) -> ToolContext:
    """The ToolContext of the MCP request ``ctx`` belongs to."""
    request = ctx.request_context.request
    return request.scope[SCOPE_KEY]


def _load_kinds() -> dict[str, ConnectorKind]:
    kinds: dict[str, ConnectorKind] = {}
    for dotted in settings.CONNECTOR_KINDS:
        kind = import_string(dotted)
        kinds[kind.slug] = kind
    return kinds


_loaded: dict[tuple[str, ...], dict[str, ConnectorKind]] = {}


def all_kinds() -> dict[str, ConnectorKind]:
    """The kinds named by ``settings.CONNECTOR_KINDS``, imported once."""
    key = tuple(settings.CONNECTOR_KINDS)
    if key not in _loaded:
        _loaded[key] = _load_kinds()
    return _loaded[key]


def get_kind(slug: str) -> ConnectorKind:
    try:
        return all_kinds()[slug]
    except KeyError:
        known = ", ".join(sorted(all_kinds())) or "none configured"
        raise KeyError(f"unknown connector kind {slug!r} (known: {known})") from None
