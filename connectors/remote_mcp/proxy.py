"""The MCP server clients see for a ``remote_mcp`` connector: the upstream's, forwarded.

One server serves every ``remote_mcp`` connector; each request finds its connector, settings
and upstream credential in the request's ToolContext. Lists are fetched with the caller's
credential (cached briefly, per connection); tools outside the connector's allow-list are
neither listed nor callable; every result is the upstream's, as it sent it.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import find_invalid_x_mcp_header, mcp_param_headers, x_mcp_header_map
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, LOG_LEVEL_META_KEY

from connectors.base import (
    REFUSED,
    SCOPE_KEY,
    Cause,
    ToolContext,
    UpstreamNotConnected,
    UpstreamUnavailable,
    guarded_http,
    request_state_security,
)
from connectors.remote_mcp.lists import LISTS, ListCache
from connectors.remote_mcp.relay import PARKED, PARKED_PREFIX, Call, ClientRelay, ParkedCalls
from connectors.remote_mcp.settings import RemoteSettings
from connectors.remote_mcp.wire import (
    SESSIONS,
    Sessions,
    UpstreamAuthRejected,
    UpstreamClient,
    UpstreamFailure,
    UpstreamRPCError,
)

log = logging.getLogger(__name__)

# The client's own protocol envelope is ours to set upstream; everything else in _meta passes,
# including the log level a 2026-07-28 client opted into.
ENVELOPE_PREFIX = "io.modelcontextprotocol/"
PASSED_ENVELOPE = (LOG_LEVEL_META_KEY,)


# Fields a 2026-07-28 client requires that older upstreams do not send; the SDK's serializer
# drops them again for clients of older generations (their schemas ignore unknown fields).
CACHEABLE = ("tools/list", "resources/list", "resources/templates/list", "prompts/list")


def for_client(method: str, result: dict[str, Any]) -> dict[str, Any]:
    """The upstream's result with what the client's generation requires filled in, if absent:
    ``resultType``; and for lists and reads ``cacheScope`` (private: the lists may differ per
    member) and ``ttlMs`` (0: ask again)."""
    result = {"resultType": "complete", **result}
    if method in CACHEABLE or method == "resources/read":
        result.setdefault("cacheScope", "private")
        result.setdefault("ttlMs", 0)
    return result


def tool_error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True, "resultType": "complete"}


class CredentialMissing(Exception):
    """No credential for this caller; ``str()`` tells them how to get one."""


class RemoteMCPServer(MCPServer):
    """An MCPServer whose every list and call is answered by the connector's upstream."""

    def __init__(
        self,
        *,
        lists: ListCache = LISTS,
        sessions: Sessions = SESSIONS,
        parked: ParkedCalls = PARKED,
    ) -> None:
        super().__init__(
            "remote_mcp",
            instructions="Tools of an MCP server hosted behind this platform.",
            request_state_security=request_state_security(),
        )
        self.lists = lists
        self.sessions = sessions
        self.parked = parked
        self._lowlevel_server.middleware.append(self._upstream_instructions)

    async def _upstream_instructions(self, ctx, call_next):
        """The upstream's ``instructions`` in initialize and server/discover, where this
        caller's credential can reach it (else the platform's)."""
        result = await call_next(ctx)
        if ctx.method not in ("initialize", "server/discover") or not isinstance(result, dict):
            return result
        try:
            context, config = _context(ctx)
            headers = await config.credential(context)
            era = await self._client(context, config, headers).era()
        except (
            MCPError,
            UpstreamFailure,
            UpstreamRPCError,
            UpstreamNotConnected,
            UpstreamUnavailable,
        ) as exc:
            log.info("upstream instructions not fetched: %s", exc)
            return result
        return {**result, "instructions": era.instructions} if era.instructions else result

    # -- requests ---------------------------------------------------------------------------

    async def _handle_list_tools(self, ctx, params) -> dict[str, Any]:
        context, config = _context(ctx)
        result = await self._listed(context, config, "tools/list", params)
        tools = [t for t in result.get("tools", []) if config.tool_allowed(t)]
        return for_client("tools/list", {**result, "tools": tools})

    async def _handle_call_tool(self, ctx, params) -> dict[str, Any]:
        context, config = _context(ctx)
        name = params.name
        refusal = await self._refusal(context, config, name)
        if refusal is not None:
            return tool_error(refusal)
        arguments = _params(params)
        state = arguments.get("requestState")
        if isinstance(state, str) and state.startswith(PARKED_PREFIX):
            call = self.parked.take(state, config.connection_key(context))
            if call is None:
                return tool_error(
                    f"{config.where} asked a question this retry answers, but the call no longer "
                    "waits here (it expired, or another web process holds it): call the tool again"
                )
            problem = call.answer(ctx, arguments.get("inputResponses") or {})
            if problem is not None:
                return tool_error(problem)
            return await self._outcome(context, config, call.relay, call.next(self.parked))
        relay = ClientRelay(ctx)
        if relay.log_level:
            arguments["_meta"] = {LOG_LEVEL_META_KEY: relay.log_level, **arguments.get("_meta", {})}
        relay.param_headers = self._param_headers(context, config, name, arguments)
        forwarded = self._forward(context, config, "tools/call", arguments, relay=relay)
        if relay.can_be_asked:
            call = Call(relay, forwarded, config.connection_key(context))
            return await self._outcome(context, config, relay, call.next(self.parked))
        return await self._outcome(context, config, relay, forwarded)

    async def _outcome(
        self, context: ToolContext, config: RemoteSettings, relay: ClientRelay, forwarded
    ) -> dict:
        """The call's result for this client, or a tool error that says what went wrong."""
        try:
            result = await forwarded
        except UpstreamRPCError as exc:  # the upstream's own answer: the client gets it as sent
            _blame(context, config, exc)
            raise _rpc_error(exc) from None
        except (UpstreamFailure, CredentialMissing, UpstreamNotConnected) as exc:
            _blame(context, config, exc)
            return tool_error(str(exc))
        except UpstreamUnavailable as exc:
            _blame(context, config, exc)
            return tool_error(f"{config.where} is unavailable: {exc}")
        if result.get("resultType") == "input_required" and not relay.modern:
            context.blame(Cause.INPUT)  # the client's protocol version cannot answer
            return tool_error(
                f"{config.where} needs input from the client, which its protocol version "
                f"({relay.version}) cannot give through this platform"
            )
        if result.get("isError"):
            context.blame(Cause.TOOL)  # the upstream tool's own answer, forwarded as it came
        return for_client("tools/call", result)

    async def _handle_list_resources(self, ctx, params) -> dict[str, Any]:
        context, config = _context(ctx)
        return for_client(
            "resources/list", await self._listed(context, config, "resources/list", params)
        )

    async def _handle_list_resource_templates(self, ctx, params) -> dict[str, Any]:
        context, config = _context(ctx)
        method = "resources/templates/list"
        return for_client(method, await self._listed(context, config, method, params))

    async def _handle_list_prompts(self, ctx, params) -> dict[str, Any]:
        context, config = _context(ctx)
        return for_client(
            "prompts/list", await self._listed(context, config, "prompts/list", params)
        )

    async def _handle_read_resource(self, ctx, params) -> dict[str, Any]:
        context, config = _context(ctx)
        result = await self._forward_or_error(context, config, "resources/read", _params(params))
        return for_client("resources/read", result)

    async def _handle_get_prompt(self, ctx, params) -> dict[str, Any]:
        context, config = _context(ctx)
        result = await self._forward_or_error(context, config, "prompts/get", _params(params))
        return for_client("prompts/get", result)

    async def _refusal(self, context, config: RemoteSettings, name: str) -> str | None:
        """Why ``name`` may not be called here, or None. An allow-list decides by name alone;
        without one, the tool's annotations do (so the list is needed)."""
        if config.allowed_tools:
            if name in config.allowed_tools:
                return None
            reason = f"{name} is not available on this connector (not in its allowed tools)"
            context.notes[REFUSED] = reason  # the audit record says "denied"
            return reason
        try:
            listed = await self._listed(context, config, "tools/list", None)
        except MCPError as exc:
            return exc.message  # _forward_or_error said whose doing it was
        tool = next((t for t in listed.get("tools", []) if t.get("name") == name), None)
        if tool is None:
            context.blame(Cause.INPUT)
            return f"{name} is not available on this connector"
        if not config.tool_allowed(tool):
            reason = (
                f"{name} is not available on this connector: it is not marked read-only, and "
                "a tenant admin enables such tools in the connector's allowed tools"
            )
            context.notes[REFUSED] = reason
            return reason
        return None

    def _param_headers(self, context, config, name: str, arguments: dict) -> dict[str, str]:
        """The Mcp-Param-* headers of a call, from the tool's schema in the cached list (the
        client's own are not forwarded: an older client sends none)."""
        listed = self.lists.get(config.connection_key(context), "tools/list") or {}
        tool = next((t for t in listed.get("tools", []) if t.get("name") == name), None)
        schema = (tool or {}).get("inputSchema")
        if not isinstance(schema, dict) or find_invalid_x_mcp_header(schema) is not None:
            return {}
        return mcp_param_headers(x_mcp_header_map(schema), arguments.get("arguments") or {})

    # -- upstream ---------------------------------------------------------------------------

    async def _listed(self, context, config: RemoteSettings, method: str, params) -> dict:
        cursor = str(getattr(params, "cursor", None) or "")
        key = config.connection_key(context)
        cached = self.lists.get(key, method, cursor)
        if cached is not None:
            return cached
        result = await self._forward_or_error(
            context, config, method, {"cursor": cursor} if cursor else {}
        )
        self.lists.put(key, method, cursor, result, config.list_ttl_seconds)
        return result

    async def _forward_or_error(self, context, config, method: str, params: dict) -> dict:
        """Forward; failures become JSON-RPC errors (lists, reads and prompts have no isError)."""
        try:
            return await self._forward(context, config, method, params)
        except UpstreamRPCError as exc:
            _blame(context, config, exc)
            raise _rpc_error(exc) from None
        except (UpstreamFailure, CredentialMissing, UpstreamNotConnected) as exc:
            _blame(context, config, exc)
            raise MCPError(INTERNAL_ERROR, str(exc)) from None
        except UpstreamUnavailable as exc:
            _blame(context, config, exc)
            raise MCPError(INTERNAL_ERROR, f"{config.where} is unavailable: {exc}") from None

    async def _forward(
        self, context: ToolContext, config: RemoteSettings, method, params, relay=None
    ):
        """One request upstream with the caller's credential; a refused OAuth token is
        refreshed once, and a refusal that survives the refresh means the grant is gone.
        ``relay`` (a ClientRelay) gets what the upstream sends the client meanwhile."""
        headers = await config.credential(context)
        try:
            client = self._client(context, config, headers, relay)
            return await client.request(method, params, relay=relay)
        except UpstreamAuthRejected as exc:
            refusal = exc
        if config.upstream_auth == "oauth":
            headers = await config.credential(context, force_refresh=True)
            try:
                client = self._client(context, config, headers, relay)
                return await client.request(method, params, relay=relay)
            except UpstreamAuthRejected as exc:
                refusal = exc
        return await self._refused(context, config, refusal)

    async def _refused(self, context: ToolContext, config: RemoteSettings, exc) -> dict:
        if config.upstream_auth == "none" or context.upstream is None or config.shared_header:
            raise UpstreamFailure(
                f"{exc}; check the connector's upstream credential settings"
            ) from None
        await context.upstream.mark_reauth(str(exc))
        raise CredentialMissing(
            f"{exc} even after a refresh: the upstream grant is gone. Reconnect at "
            f"{context.upstream.reconnect_url}, then try again."
            if config.upstream_auth == "oauth"
            else f"{exc}: your key was refused. Enter it again at "
            f"{context.upstream.reconnect_url}, then try again."
        ) from None

    def _client(
        self, context: ToolContext, config: RemoteSettings, headers, relay=None
    ) -> UpstreamClient:
        key = config.connection_key(context)
        return UpstreamClient(
            config.upstream_url,
            http=guarded_http(),  # public addresses only (or OUTBOUND_ALLOWED_NETWORKS)
            headers=headers,
            timeout=config.timeout_seconds,
            key=key,
            sessions=self.sessions,
            on_notification=lambda note: self.lists.notified(key, note),
            client_capabilities=relay.upstream_capabilities if relay is not None else None,
            param_headers=relay.param_headers if relay is not None else None,
        )


def _rpc_error(exc: UpstreamRPCError) -> MCPError:
    error = exc.error
    code = error.get("code")
    return MCPError(
        code if isinstance(code, int) else INTERNAL_ERROR,
        str(error.get("message", "")),
        error.get("data"),
    )


# JSON-RPC errors that say the request itself was wrong (unknown method, bad params).
_CALLERS_ERRORS = (-32700, -32600, -32601, -32602)


def _blame(context: ToolContext, config: RemoteSettings, exc: Exception) -> None:
    """Say whose doing a failed forward was, for the connector's health."""
    if isinstance(exc, UpstreamRPCError):
        code = exc.error.get("code")
        if code in _CALLERS_ERRORS:
            context.blame(Cause.INPUT)
        else:
            context.blame(Cause.UPSTREAM, f"error {code} from {config.upstream_url}")
    elif isinstance(exc, (CredentialMissing, UpstreamNotConnected)):
        context.blame(Cause.CONNECTION)
    elif isinstance(exc, UpstreamFailure) and exc.status:
        context.blame(Cause.UPSTREAM, f"{exc.status} from {config.upstream_url}")
    elif isinstance(exc, UpstreamFailure):
        context.blame(Cause.UPSTREAM, f"{config.upstream_url}: {exc}")
    else:
        context.blame(Cause.UPSTREAM, f"{config.upstream_url} unavailable: {exc}")


def _context(ctx) -> tuple[ToolContext, RemoteSettings]:
    context = ctx.request.scope[SCOPE_KEY]
    try:
        return context, RemoteSettings.from_mapping(
            context.connector_settings, mode=context.connector_mode
        )
    except ValueError as exc:
        raise MCPError(INVALID_PARAMS, f"this connector is misconfigured: {exc}") from None


def _params(params) -> dict[str, Any]:
    data = params.model_dump(by_alias=True, exclude_none=True, mode="json")
    meta = {
        k: v
        for k, v in (data.get("_meta") or {}).items()
        if not k.startswith(ENVELOPE_PREFIX) or k in PASSED_ENVELOPE
    }
    data.pop("_meta", None)
    if meta:
        data["_meta"] = meta
    return data
