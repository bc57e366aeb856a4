"""What a connector kind declares, and the registry the platform finds kinds in.

A kind is provider code (``connectors/<kind>/``) behind this small interface: its tools (an
``mcp`` SDK server, one per kind, serving every tenant's connectors of that kind) and what it
needs from an upstream OAuth provider. The platform stays provider-neutral.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from mcp.server.mcpserver import Context


class UpstreamReauthRequired(Exception):
    """The upstream grant is dead (invalid_grant, revoked): only the user can restore it."""


class UpstreamUnavailable(Exception):
    """A transient upstream failure (5xx, timeout, throttling); worth retrying later."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class UpstreamTokens:
    """One token answer of a provider. Values are kept out of repr (and so out of logs)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    refresh_expires_in: int | None = None
    external_account_id: str = ""
    external_account_name: str = ""


class UpstreamProvider(Protocol):
    """The OAuth client side of one upstream provider, as the platform uses it.

    Implementations raise UpstreamReauthRequired or UpstreamUnavailable, never their own
    exception types, and never put token values in messages.
    """

    name: str

    def authorization_url(self, *, state: str, redirect_uri: str) -> str: ...

    def exchange_code(self, *, params: Mapping[str, str], redirect_uri: str) -> UpstreamTokens: ...

    def refresh(self, refresh_token: str) -> UpstreamTokens: ...

    def revoke(self, token: str) -> None: ...


@dataclass(frozen=True)
class UpstreamOAuth:
    """An upstream provider this kind must hold tokens for (the hop inside /authorize)."""

    provider: str
    build_provider: Callable[[], UpstreamProvider]


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
