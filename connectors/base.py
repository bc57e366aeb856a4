"""The contract between the platform and a connector kind; the only platform module kinds import.

A kind is provider code in ``connectors/<kind>/`` that declares one ``ConnectorKind``:

- its tools: ``build_server`` (an ``mcp`` SDK ``MCPServer`` with decorated tools, resources,
  prompts and completions; one per kind, serving every tenant's connectors of that kind) or
  ``tool_source`` (a ``ToolSource``: the tool list is asked for per request, so it may differ per
  connection, and calls are handed to one async function);
- its upstream OAuth provider (``upstream``), or none;
- its per-connector settings (``settings_schema``), which the platform validates on every save
  (dashboard form and API alike);
- the environment settings it reads (``env``), read and checked when the platform starts;
- for requests to URLs tenants choose, ``guarded_http()`` / ``guarded_sync_http()``: clients
  that connect only to public addresses (checked on the resolved address at connect time)
  unless ``OUTBOUND_ALLOWED_NETWORKS`` allows more (a kind lists it in its ``env``);
- an optional embedded emulator (``embedded_emulator``) that ``manage.py serve`` starts in the
  embedded default;
- the OAuth scopes its tools may need (``scopes``; a tool says which with ``requires_scope``).

Every tool call runs with a ``ToolContext`` (``tool_context(ctx)``): who calls, which connector
with which settings, an ``upstream`` handle (the connection's access token, refreshed under the
platform's lease when due), ``http``, the process's pooled async HTTP client, and ``limiter``,
request slots every process of the platform shares (for an upstream's per-account rate limits).

Nothing here imports a platform app; the platform implements ``UpstreamHandle`` and
``SlotLimiter``.
Installing a kind is one line: its import path in ``CONNECTOR_KINDS`` (or the
``EXTRA_CONNECTOR_KINDS`` environment variable).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import subprocess
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from http.cookiejar import CookieJar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from mcp.server.mcpserver import Context
    from mcp.server.request_state import RequestStateSecurity
    from mcp.types import CallToolResult, Tool

# --- Errors a kind raises or receives ---------------------------------------------------------


class UpstreamReauthRequired(Exception):
    """The upstream grant is dead (invalid_grant, revoked): only the user can restore it."""


class UpstreamUnavailable(Exception):
    """A transient upstream failure (5xx, timeout, throttling); worth retrying later."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamNotConnected(Exception):
    """No usable upstream connection; the message says how to restore it (shown to the user)."""


class SettingsError(ValueError):
    """Connector settings that do not fit the kind's schema: ``errors`` maps field to message."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.errors.items()))


# --- Upstream OAuth provider ------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamTokens:
    """One token answer of a provider. Values are kept out of repr (and so out of logs)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    refresh_expires_in: int | None = None
    external_account_id: str = ""
    external_account_name: str = ""


@dataclass(frozen=True)
class AuthorizationStart:
    """A provider's answer to ``authorization_url`` when it has state to keep for the callback:
    ``flow`` (JSON) is stored with the hop's single-use state (server-side, in the browser's
    session) and handed back as ``exchange_code(..., flow=flow)``; ``steps`` go to the trace."""

    url: str
    flow: Mapping[str, Any] = field(default_factory=dict, repr=False)
    steps: tuple[str, ...] = ()


class UpstreamProvider(Protocol):
    """The OAuth client side of one upstream provider, as the platform uses it.

    Implementations raise UpstreamReauthRequired or UpstreamUnavailable, never their own
    exception types, and never put token values in messages. They run in worker threads
    (sync code), never on the event loop.
    """

    name: str

    def authorization_url(self, *, state: str, redirect_uri: str) -> str | AuthorizationStart: ...

    def exchange_code(
        self, *, params: Mapping[str, str], redirect_uri: str, **flow: Any
    ) -> UpstreamTokens:
        """``flow=`` is passed only when ``authorization_url`` returned an AuthorizationStart."""
        ...

    def refresh(self, refresh_token: str) -> UpstreamTokens: ...

    def revoke(self, token: str) -> None: ...


@dataclass(frozen=True)
class UpstreamOAuth:
    """An upstream provider this kind must hold tokens for (the hop inside /authorize).

    A kind whose upstream differs per connector (``remote_mcp``: each connector names its own
    server) sets ``per_connector``: ``build_provider`` then gets the connector's settings
    (secrets unsealed). ``needs_connection(settings, mode)`` says whether a connector holds an
    upstream connection at all (no hop when it does not). ``credential_label(settings)`` names
    a secret each member types on a platform page instead of an OAuth trip (the provider's
    ``accept_credential(value)`` turns it into tokens). ``client_metadata(redirect_uri)`` is the
    client ID metadata document the platform serves next to the provider's callback.
    """

    provider: str
    build_provider: Callable[..., UpstreamProvider]
    per_connector: bool = False
    needs_connection: Callable[[Mapping[str, Any], str], bool] | None = None
    credential_label: Callable[[Mapping[str, Any]], str | None] | None = None
    client_metadata: Callable[[str], dict[str, Any]] | None = None

    def provider_for(self, connector_settings: Mapping[str, Any]) -> UpstreamProvider:
        """The provider of a connector with these (unsealed) settings."""
        if self.per_connector:
            return self.build_provider(connector_settings)
        return self.build_provider()

    def connects(self, connector_settings: Mapping[str, Any], mode: str) -> bool:
        """Whether a connector with these settings holds an upstream connection."""
        return self.needs_connection is None or self.needs_connection(connector_settings, mode)


# --- What a tool gets -------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamAccess:
    """A usable upstream access token and the account it reaches."""

    access_token: str = field(repr=False)
    account_id: str
    account_name: str = ""


@dataclass(frozen=True)
class UpstreamStatus:
    """The stored state of a connection (``status`` is ``not_connected`` when there is none)."""

    status: str
    account_id: str = ""
    account_name: str = ""
    access_expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    last_refresh_at: datetime | None = None
    last_used_at: datetime | None = None
    last_error: str = ""
    failure_count: int = 0

    @property
    def usable(self) -> bool:
        return self.status not in ("not_connected", "needs_reauth", "revoked")


class UpstreamHandle(Protocol):
    """The upstream connection of one tool call (the member's own, or the shared one)."""

    reconnect_url: str
    """Where a person (re)connects the upstream account (the tenant admin for a shared one)."""

    async def access(self, *, force_refresh: bool = False) -> UpstreamAccess:
        """The access token, refreshed under the platform's lease when due (or when forced,
        e.g. after the provider refused it). Raises UpstreamNotConnected (message for the user,
        with reconnect_url) or UpstreamUnavailable."""
        ...

    async def mark_reauth(self, reason: str) -> None:
        """The provider refuses a freshly refreshed token: the grant is gone; tell the admins."""
        ...

    async def status(self) -> UpstreamStatus:
        """The connection's stored state, read now."""
        ...


class SlotLimiter(Protocol):
    """Request slots counted by every process of the platform (in Redis): a kind keeps an
    upstream's per-account rate limits with it, so N replicas do not send N times the rate."""

    async def try_acquire(self, key: str, windows: Sequence[tuple[int, float]]) -> float:
        """Take one slot of ``key`` when it is under every ``(limit, seconds)`` sliding window
        and return 0.0; else take nothing and return the seconds until a slot frees."""
        ...


@dataclass(frozen=True)
class ToolContext:
    """Who and what a tool call runs for; set by the gateway after the bearer check."""

    tenant_id: int
    tenant_slug: str
    connector_id: int
    connector_slug: str
    connector_settings: Mapping[str, Any]
    connector_mode: str
    user_id: int
    username: str
    client_id: str
    token_id: int
    upstream: UpstreamHandle | None = None  # None for a kind without an upstream provider
    http: httpx.AsyncClient | None = None  # the process's pooled client (shared_http())
    role: str = "member"  # the caller's role in the tenant: admin or member
    # Shared by every process; None when the platform runs without Redis (one web process):
    # then a kind counts in its own process.
    limiter: SlotLimiter | None = None
    # What this call reports for its audit record (one dict per request; see ``note``).
    notes: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def note(self, *, upstream_request_id: str) -> None:
        """Record the upstream's id of the request this tool call made (kept in the audit log)."""
        self.notes[UPSTREAM_REQUEST_ID] = str(upstream_request_id)[:200]

    def blame(self, cause: str, detail: str = "") -> None:
        """Say whose doing this call's failure was (a ``Cause``), with a short ``detail`` for
        the connector's health (e.g. ``502 from https://mcp.example.com``). The connector's
        health counts only ``Cause.UPSTREAM`` and failures nobody explained."""
        self.notes[CAUSE] = str(cause)
        if detail:
            self.notes[CAUSE_DETAIL] = str(detail)[:200]


SCOPE_KEY = "platform.tool_context"
UPSTREAM_REQUEST_ID = "upstream_request_id"
# Set in ToolContext.notes when the platform refused a call (tool policy, write gate): why.
REFUSED = "refused"
# Set in ToolContext.notes by ``ToolContext.blame`` when a call failed: whose doing it was.
CAUSE = "cause"
CAUSE_DETAIL = "cause_detail"


class Cause(StrEnum):
    """Whose doing a failed call was (``ToolContext.blame``)."""

    INPUT = "input"  # the caller's request: bad arguments, a refused query, an unknown record
    TOOL = "tool"  # the tool's own answer to these arguments (a remote tool's error result)
    CONNECTION = "connection"  # the upstream connection is missing or must be reconnected
    UPSTREAM = "upstream"  # the upstream failed: unreachable, 5xx, throttling, odd answers


# The one connector setting the platform knows by name: tools that change upstream data are
# listed and callable only where it is true (connectors.write_gate).
WRITES_SETTING = "writes_allowed"


def tool_context(ctx: Context) -> ToolContext:
    """The ToolContext of the MCP request ``ctx`` belongs to (tools, resources, prompts)."""
    request = ctx.request_context.request
    return request.scope[SCOPE_KEY]


def request_state_security() -> RequestStateSecurity:
    """How a kind's MCPServer seals the 2026-07-28 ``requestState`` (the input-required round
    trip): a key every web process shares (derived from SECRET_KEY), so a client's retry may
    land on any of them; and bound to the member and connector the round was asked for.
    Pass it as ``MCPServer(..., request_state_security=request_state_security())``."""
    import hashlib
    import hmac

    from mcp.server.request_state import RequestStateSecurity

    key = hmac.new(settings.SECRET_KEY.encode(), b"mcp request state", hashlib.sha256).digest()

    def principal(ctx) -> str | None:
        request = getattr(ctx, "request", None)
        context = request.scope.get(SCOPE_KEY) if request is not None else None
        if context is None:
            return None
        return f"{context.tenant_id}/{context.connector_id}/{context.user_id}"

    return RequestStateSecurity(keys=[key], bind_principal=principal)


# One pooled client per event loop: an AsyncClient's connections belong to the loop that made
# them. The gateway runs one loop per process, so in practice this is one client per process.
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0, pool=5.0)
HTTP_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=4.0)


class NoCookies(CookieJar):
    """A cookie jar that keeps nothing, for every client the platform makes (``cookies=``).

    The clients are shared: one serves every tenant's calls to the same host, so a cookie that
    host set while answering for one tenant would go along with the next tenant's request."""

    def extract_cookies(self, response, request) -> None:
        pass

    def set_cookie(self, cookie) -> None:
        pass


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_http() -> httpx.AsyncClient:
    """The pooled async HTTP client of this process (its running event loop) for tool calls.

    Connections are kept alive between calls; per-request timeouts and headers go on each
    request. Kinds never close it."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS, follow_redirects=False, cookies=NoCookies()
        )
        _clients[loop] = client
    return client


# --- Scopes a tool needs ----------------------------------------------------------------------

# Where a tool says which OAuth scopes a call needs, in its ``_meta`` (so clients see it in
# tools/list): the tool-level ``securitySchemes`` of SEP-1488 and the OpenAI Apps SDK.
SECURITY_SCHEMES = "securitySchemes"


def requires_scope(*scopes: str) -> dict[str, Any]:
    """The tool ``meta`` of a tool whose calls need ``scopes`` besides the platform's own:
    ``@server.tool(meta=requires_scope("quickbooks.write"))``. The kind offers each scope in
    ``ConnectorKind.scopes``; a call with a token that lacks one is answered 403
    ``insufficient_scope`` naming what to ask for, and the client steps up."""
    return {SECURITY_SCHEMES: [{"type": "oauth2", "scopes": list(scopes)}]}


def scopes_needed(meta: Mapping[str, Any] | None) -> frozenset[str]:
    """The scopes a tool's ``_meta`` (wire form) says its calls need (none when it says none)."""
    needed: set[str] = set()
    for scheme in (meta or {}).get(SECURITY_SCHEMES) or ():
        if isinstance(scheme, Mapping) and scheme.get("type") == "oauth2":
            needed.update(str(scope) for scope in scheme.get("scopes") or ())
    return frozenset(needed)


# --- A tool source: tools decided per request -------------------------------------------------


class ToolSource(Protocol):
    """Tools that are not known before a request: listed and called per connection.

    ``list_tools`` may differ per connector or user (e.g. forwarded from a remote MCP server);
    ``call_tool`` returns the wire result (``isError`` for a tool failure). A kind that also
    serves resources, prompts or completions builds an ``MCPServer`` instead (``build_server``)
    and registers them with the SDK's decorators; ``tool_context(ctx)`` works in all of them.
    """

    async def list_tools(self, context: ToolContext) -> list[Tool]: ...

    async def call_tool(
        self, context: ToolContext, name: str, arguments: dict[str, Any]
    ) -> CallToolResult: ...


def server_for_tool_source(name: str, source: ToolSource, instructions: str = "") -> MCPServer:
    """An MCPServer whose tools/list and tools/call ask ``source`` with the request's context."""
    from mcp.server import MCPServer
    from mcp.types import CallToolResult, ListToolsResult, TextContent

    class ToolSourceServer(MCPServer):
        async def _handle_list_tools(self, ctx, params) -> ListToolsResult:
            return ListToolsResult(tools=await source.list_tools(ctx.request.scope[SCOPE_KEY]))

        async def _handle_call_tool(self, ctx, params) -> CallToolResult:
            context = ctx.request.scope[SCOPE_KEY]
            try:
                return await source.call_tool(context, params.name, params.arguments or {})
            except (UpstreamNotConnected, UpstreamUnavailable) as exc:
                if isinstance(exc, UpstreamNotConnected):
                    context.blame(Cause.CONNECTION)
                else:
                    context.blame(Cause.UPSTREAM, str(exc))
                text = TextContent(type="text", text=str(exc))
                return CallToolResult(content=[text], is_error=True)

    return ToolSourceServer(name, instructions=instructions or None)


# --- Per-connector settings -------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One per-connector setting. ``clean`` returns the stored value or raises ValueError."""

    name: str
    label: str = ""
    help: str = ""
    required: bool = False
    default: Any = None
    secret = False  # write-only: never shown again, stored sealed

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def clean(self, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class BooleanSetting(Setting):
    default: Any = False

    def clean(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value


@dataclass(frozen=True)
class TextSetting(Setting):
    default: Any = ""
    max_length: int = 500

    def clean(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if len(value) > self.max_length:
            raise ValueError(f"must be at most {self.max_length} characters")
        return value.strip()


@dataclass(frozen=True)
class UrlSetting(TextSetting):
    """An absolute http(s) URL; plain http only where ``allow_http`` (e.g. loopback tests)."""

    allow_http: bool = False
    max_length: int = 2000

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        if not value:
            return value
        parts = urlsplit(value)
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"must be an absolute {' or '.join(schemes)} URL")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials (use a secret setting)")
        return value


@dataclass(frozen=True)
class ChoiceSetting(Setting):
    """One of ``choices``: (value, label) pairs."""

    choices: tuple[tuple[str, str], ...] = ()

    def clean(self, value: Any) -> str:
        allowed = [choice for choice, _ in self.choices]
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value


@dataclass(frozen=True)
class SecretSetting(TextSetting):
    """A secret (an API key, a header value): write-only, stored encrypted, shown as set/unset."""

    secret = True


SEALED_PREFIX = "sealed:"


@dataclass(frozen=True)
class SettingsSchema:
    """The settings of a kind's connectors. No other keys are stored."""

    fields: tuple[Setting, ...] = ()

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields if f.default is not None and not f.secret}

    def clean(
        self,
        data: Mapping[str, Any],
        *,
        current: Mapping[str, Any] | None = None,
        seal: Callable[[str], str] | None = None,
    ) -> dict[str, Any]:
        """The settings to store: ``data`` (all or some fields) over ``current`` (or defaults).

        A secret left empty keeps its current value; a new one is stored sealed with ``seal``.
        Raises SettingsError naming each bad field.
        """
        if not isinstance(data, Mapping):
            raise SettingsError({"settings": "must be an object"})
        by_name = {f.name: f for f in self.fields}
        errors = {key: "unknown setting" for key in data if key not in by_name}
        stored = {**self.defaults(), **(current or {})}
        for key, value in data.items():
            setting = by_name.get(key)
            if setting is None:
                continue
            if setting.secret and value in (None, ""):
                continue  # write-only: an empty field keeps the stored secret
            try:
                cleaned = setting.clean(value)
            except ValueError as exc:
                errors[key] = str(exc)
                continue
            if setting.secret:
                if seal is None:
                    raise ImproperlyConfigured("a secret setting needs a seal function")
                cleaned = SEALED_PREFIX + seal(cleaned)
            stored[key] = cleaned
        for setting in self.fields:
            if setting.required and stored.get(setting.name) in (None, ""):
                errors.setdefault(setting.name, "is required")
        if errors:
            raise SettingsError(errors)
        return {key: value for key, value in stored.items() if key in by_name}

    def public(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The settings as shown in the dashboard and API: a secret only says whether it is set."""
        shown = {}
        for setting in self.fields:
            value = stored.get(setting.name, setting.default)
            shown[setting.name] = bool(value) if setting.secret else value
        return shown

    def opened(self, stored: Mapping[str, Any], unseal: Callable[[str], str]) -> dict[str, Any]:
        """The settings a tool sees: secrets unsealed."""
        opened = dict(stored)
        for setting in self.fields:
            value = stored.get(setting.name)
            if setting.secret and isinstance(value, str) and value.startswith(SEALED_PREFIX):
                opened[setting.name] = unseal(value[len(SEALED_PREFIX) :])
        return opened

    @property
    def has_secrets(self) -> bool:
        return any(f.secret for f in self.fields)


# --- Environment settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class EnvSetting:
    """A value the kind reads from the environment (``NAME`` or a file named by ``NAME_FILE``).

    The platform reads every installed kind's env settings once at start into Django settings
    (``check`` refuses bad values loudly); ``value()`` is how the kind reads it back.
    """

    name: str
    default: str = ""
    help: str = ""
    parse: Callable[[str], Any] = str
    # (parsed value, embedded?) -> an error message, or None when the value is fine.
    check: Callable[[Any, bool], str | None] | None = None
    default_embedded: str = ""  # the default in the embedded default, when it differs

    def read(self, raw: str | None, *, embedded: bool) -> Any:
        default = self.default_embedded if embedded and self.default_embedded else self.default
        text = default if raw in (None, "") else raw
        try:
            value = self.parse(text)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{self.name}={text!r} is not valid: {exc}") from exc
        problem = self.check(value, embedded) if self.check else None
        if problem:
            raise ImproperlyConfigured(f"{self.name}: {problem}")
        return value

    def value(self) -> Any:
        if hasattr(settings, self.name):
            return getattr(settings, self.name)
        return self.read(os.environ.get(self.name), embedded=getattr(settings, "EMBEDDED", True))


def kinds_env_settings(
    kind_paths: Iterable[str], *, read: Callable[[str], str | None], embedded: bool
) -> dict[str, Any]:
    """The env settings of the kinds at ``kind_paths``, read and checked (for settings.py)."""
    values: dict[str, Any] = {}
    for dotted in kind_paths:
        for env_setting in import_string(dotted).env:
            values[env_setting.name] = env_setting.read(read(env_setting.name), embedded=embedded)
    return values


# --- Outbound requests to URLs tenants choose (SSRF guard) ------------------------------------

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())


OUTBOUND_ALLOWED_NETWORKS = EnvSetting(
    "OUTBOUND_ALLOWED_NETWORKS",
    default="",
    default_embedded="127.0.0.0/8,::1/128",
    help="Networks that are not public (CIDRs, comma-separated) which connector kinds may reach "
    "at URLs tenants choose, e.g. an internal MCP server's 10.1.2.0/24. Default: none; the "
    "embedded default allows loopback.",
    parse=_networks,
)


class AddressRefused(httpcore.ConnectError):
    """An outbound connection the platform refused: the host's address is not public."""


def address_allowed(address: Address) -> bool:
    """Whether a connection to ``address`` may be made: a public (global unicast) address, or
    one inside OUTBOUND_ALLOWED_NETWORKS. Private, loopback, link-local (cloud metadata at
    169.254.169.254), shared, reserved, multicast and unspecified addresses are refused."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in OUTBOUND_ALLOWED_NETWORKS.value()):
        return True
    return address.is_global and not address.is_multicast


def _checked(host: str, infos: list) -> list[str]:
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        if not address_allowed(address):
            named = text if text == host else f"{host} resolves to {text}, which"
            raise AddressRefused(
                f"{named} is not a public address (the platform connects only to public "
                "addresses unless OUTBOUND_ALLOWED_NETWORKS allows it)"
            )
    return addresses


def resolve_checked(host: str, port: int) -> list[str]:
    """The addresses of ``host``, all allowed, or AddressRefused (also when it has none)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"{host} could not be resolved ({exc})") from exc
    return _checked(host, infos)


async def aresolve_checked(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"{host} could not be resolved ({exc})") from exc
    return _checked(host, infos)


def url_refusal(url: str) -> str | None:
    """Why the platform would refuse to connect to ``url``'s host now, or None (a name that
    does not resolve yet passes: it is checked again at every connection)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        resolve_checked(parts.hostname, parts.port or 443)
    except AddressRefused as exc:
        return str(exc)
    except httpcore.ConnectError:
        return None
    return None


def refused_by_guard(exc: BaseException) -> AddressRefused | None:
    """The AddressRefused behind an httpx error, if the guard refused the connection."""
    seen = exc
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the address it checked (so a second DNS answer cannot differ); TLS still
    verifies the name (httpcore sends the URL's host as SNI)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        error: Exception | None = None
        for address in await aresolve_checked(host, port):
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise AddressRefused("unix sockets are not reachable from connectors")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _GuardedSyncBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        error: Exception | None = None
        for address in resolve_checked(host, port):
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise AddressRefused("unix sockets are not reachable from connectors")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


_guarded: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


Transport = TypeVar("Transport", httpx.HTTPTransport, httpx.AsyncHTTPTransport)


def guard_transport(transport: Transport) -> Transport:
    """``transport`` connecting only where ``address_allowed`` (a new one, without a proxy)."""
    # httpx builds the connection pool; its network backend is httpcore's hook for this.
    pool = transport._pool
    if isinstance(transport, httpx.AsyncHTTPTransport):
        pool._network_backend = _GuardedBackend(pool._network_backend)
    else:
        pool._network_backend = _GuardedSyncBackend(pool._network_backend)
    return transport


def guarded_http() -> httpx.AsyncClient:
    """Like ``shared_http()``, for URLs tenants choose: connects only where
    ``address_allowed``; never follows redirects, ignores proxy environment variables."""
    loop = asyncio.get_running_loop()
    client = _guarded.get(loop)
    if client is None or client.is_closed:
        transport = guard_transport(httpx.AsyncHTTPTransport(limits=HTTP_LIMITS))
        client = httpx.AsyncClient(
            transport=transport,
            timeout=HTTP_TIMEOUT,
            follow_redirects=False,
            trust_env=False,
            cookies=NoCookies(),
        )
        _guarded[loop] = client
    return client


def guarded_sync_http(timeout: httpx.Timeout = HTTP_TIMEOUT) -> httpx.Client:
    """A new sync client with the same guard (for worker-thread code such as OAuth fetches)."""
    transport = guard_transport(httpx.HTTPTransport())
    return httpx.Client(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        cookies=NoCookies(),
    )


# --- Embedded emulator ------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedSetup:
    """What ``serve`` gives a kind's emulator hook in the embedded default."""

    public_url: str
    port: int  # free for the kind's emulator to listen on
    callback_url: str  # the platform's upstream OAuth callback for this kind
    var_dir: Path
    kept_secret: Callable[[str], str]  # a secret kept under var_dir by name, made on first use
    popen_options: Mapping[str, Any]  # pass to subprocess.Popen: the child ends with serve


@dataclass(frozen=True)
class EmbeddedEmulator:
    """A started emulator: ``serve`` applies ``environment`` to itself and its workers, prints
    ``banner`` and stops ``process`` on exit."""

    process: subprocess.Popen
    environment: Mapping[str, str]
    banner: str


# --- The kind ---------------------------------------------------------------------------------


@dataclass
class ConnectorKind:
    slug: str
    title: str
    description: str
    build_server: Callable[[], MCPServer] | None = None
    tool_source: Callable[[], ToolSource] | None = None
    upstream: UpstreamOAuth | None = None
    settings_schema: SettingsSchema = field(default_factory=SettingsSchema)
    env: tuple[EnvSetting, ...] = ()
    # Called by serve in the embedded default; returns None when not needed (e.g. real
    # credentials are configured).
    embedded_emulator: Callable[[EmbeddedSetup], EmbeddedEmulator | None] | None = None
    instructions: str = ""
    # The URL of a server of its own the doctor can check ("Test upstream"), from the settings.
    doctor_url: Callable[[Mapping[str, Any]], str | None] | None = None
    # OAuth scopes its tools may need besides the platform's own (``requires_scope``), each with
    # what it allows, as the consent page says it: offered by the authorization server.
    scopes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.build_server is None) == (self.tool_source is None):
            raise ImproperlyConfigured(
                f"connector kind {self.slug!r} needs exactly one of build_server or tool_source"
            )

    @cached_property
    def server(self) -> MCPServer:
        if self.build_server is not None:
            return self.build_server()
        return server_for_tool_source(self.slug, self.tool_source(), self.instructions)


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


def offered_scopes() -> dict[str, str]:
    """Every scope the installed kinds' tools may need, with what it allows."""
    offered: dict[str, str] = {}
    for kind in all_kinds().values():
        offered.update(kind.scopes)
    return offered


async def declared_tools(slug: str) -> list[Tool]:
    """The tools kind ``slug`` declares up front (its MCPServer's tools, annotations included);
    none for a tool source, whose tools are only known per request."""
    kind = get_kind(slug)
    if kind.tool_source is not None:
        return []
    return await kind.server.list_tools()
