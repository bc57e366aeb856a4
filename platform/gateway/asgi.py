"""The MCP resource server: routing, bearer check, audience, CORS, dispatch to a kind's tools."""

import contextlib
import json
import logging
import re
import time
from collections import OrderedDict
from datetime import timedelta

import anyio
import pydantic_core
from django.conf import settings
from django.utils import timezone
from mcp.server.streamable_http_manager import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from config import crypto
from config.db import db_sync_to_async, db_writer_executor
from config.limits import slot_limiter
from config.logging import request_id_from, request_id_var
from connectors.base import (
    CAUSE,
    CAUSE_DETAIL,
    REFUSED,
    SCOPE_KEY,
    UPSTREAM_REQUEST_ID,
    Cause,
    ToolContext,
    all_kinds,
    declared_tools,
    get_kind,
    shared_http,
)
from events.audit import (
    audit_arguments,
    audit_buffer,
    audit_otel_emit,
    audit_otel_logger,
    audit_record_new,
    audit_records_written,
    audit_webhook_send,
)
from events.metrics import metrics_tool_call
from events.models import AuditRecord, Event
from events.services import aevent_record, call_counter
from gateway.answers import cors_headers, json_answer, respond, rpc_error
from gateway.bearer import BearerCheck, BearerChecks
from gateway.body import read_body
from gateway.dispatch import answer_here, single_request
from gateway.faults import serve_within_boundary
from gateway.policy import POLICY_KEY, install_tool_policy
from gateway.ratelimit import rate_limit_refusal, rate_limited_record
from gateway.scopes import ToolScopes, missing_scopes
from upstream.access import ConnectionHandle

log = logging.getLogger(__name__)

MCP_PATH = re.compile(r"^/t/(?P<tenant>[a-z0-9-]+)/(?P<connector>[a-z0-9-]+)/mcp$")
COUNTER_FLUSH_SECONDS = 60

_audit_flush = db_sync_to_async(audit_buffer.flush, executor=db_writer_executor())
_counts_flush = db_sync_to_async(call_counter.flush, executor=db_writer_executor())


def resource_metadata_url(tenant: str, connector: str) -> str:
    return f"{settings.PUBLIC_URL}/.well-known/oauth-protected-resource/t/{tenant}/{connector}/mcp"


class _Seen:
    """Tokens this process has already served, so only a client's first call is traced in full.

    The most recent ``size`` only: each costs about 140 bytes for the life of the process. A
    token forgotten here has its next call traced as a first call again, as it would be on
    another process or after a restart (events.trace reads it so)."""

    def __init__(self, size: int = 10_000) -> None:
        self._items: OrderedDict[int, None] = OrderedDict()
        self._size = size

    def __len__(self) -> int:
        return len(self._items)

    def first_time(self, key: int) -> bool:
        if key in self._items:
            return False
        self._items[key] = None
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return True


def _session_manager(server, *, json_response: bool):
    """A new stateless SDK session manager of ``server`` (its streamable_http_app makes one)."""
    server.streamable_http_app(
        stateless_http=True,
        json_response=json_response,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return server.session_manager


class Gateway:
    """ASGI app for ``/t/<tenant>/<connector>/mcp``; stateless SDK session managers per kind.

    Two per kind: the handshake wire (through 2025-11-25) answers each POST with one JSON body;
    the 2026-07-28 wire may stream, which the SDK does only when a tool sends notifications
    (progress, logs) during the call, and otherwise answers JSON too. A plain handshake-era
    request (one JSON-RPC request, no progress asked) skips the handshake manager's transport
    and is answered by the kind's server in this task (gateway.dispatch), as that transport
    would answer it.
    """

    def __init__(self) -> None:
        self.managers = {}
        self.streaming_managers = {}
        for slug, kind in all_kinds().items():
            self.managers[slug] = _session_manager(kind.server, json_response=True)
            self.streaming_managers[slug] = _session_manager(kind.server, json_response=False)
            install_tool_policy(kind.server)
        self._seen = _Seen()
        self._read_only: dict[str, frozenset[str]] = {}
        self._tool_scopes = ToolScopes()
        self._audit_due: anyio.Event | None = None
        self._check = BearerChecks()

    @contextlib.asynccontextmanager
    async def lifespan(self):
        async with contextlib.AsyncExitStack() as stack:
            for manager in [*self.managers.values(), *self.streaming_managers.values()]:
                await stack.enter_async_context(manager.run())
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._flush_counts_forever)
                tg.start_soon(self._flush_audit_forever)
                tg.start_soon(self._check.open)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        await _counts_flush()
        await self._flush_audit()
        self._check.close()

    async def _flush_counts_forever(self) -> None:
        while True:
            await anyio.sleep(COUNTER_FLUSH_SECONDS)
            await _counts_flush()

    async def _flush_audit_forever(self) -> None:
        """Write the audit buffer every AUDIT_FLUSH_SECONDS, or at once when a batch is full."""
        while True:
            self._audit_due = anyio.Event()
            with anyio.move_on_after(settings.AUDIT_FLUSH_SECONDS):
                await self._audit_due.wait()
            await self._flush_audit()

    async def _flush_audit(self) -> None:
        written = await _audit_flush()
        if not written:
            return
        logger = audit_otel_logger()
        if settings.AUDIT_WEBHOOK_URL or logger:
            records = audit_records_written(written)  # model instances only for what reads them
            if settings.AUDIT_WEBHOOK_URL:
                await audit_webhook_send(records, shared_http())
            if logger:
                audit_otel_emit(records, logger)

    @staticmethod
    def matches(path: str) -> bool:
        return path.startswith("/t/")

    async def __call__(self, scope, receive, send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = request_id_from(headers.get("x-request-id"))
        token = request_id_var.set(request_id)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await serve_within_boundary(self._serve, scope, receive, send_with_id, headers)
        finally:
            request_id_var.reset(token)

    async def _serve(self, scope, receive, send, headers) -> None:
        started = time.monotonic()
        match = MCP_PATH.match(scope["path"])
        if not match:
            await json_answer(
                send, 404, {"error": "not_found", "error_description": "No such MCP endpoint"}
            )
            return
        tenant, connector = match["tenant"], match["connector"]

        if not _host_allowed(headers.get("host", "")):
            await json_answer(
                send,
                421,
                {"error": "invalid_host", "error_description": "Host does not match PUBLIC_URL"},
            )
            return
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/") not in _allowed_origins():
            await json_answer(
                send,
                403,
                rpc_error(
                    f"Origin {origin} may not call this endpoint (see EXTRA_ALLOWED_ORIGINS)"
                ),
            )
            return
        if scope["method"] == "OPTIONS":
            await respond(send, 204, b"", [])
            return
        if scope["method"] != "POST":
            # No sessions (stateless), so no GET stream to open and no session to DELETE: the
            # answer both the 2025-11-25 and the 2026-07-28 transports give for that.
            await json_answer(
                send,
                405,
                rpc_error(f"{scope['method']} is not served here: send each message as a POST"),
                [("allow", "POST, OPTIONS")],
            )
            return

        token = _bearer(headers.get("authorization", ""))
        check = await self._check(tenant, connector, token)
        if check is None:
            await json_answer(
                send, 404, {"error": "not_found", "error_description": "No such connector"}
            )
            return
        refusal = _refusal(check, token, tenant, connector)
        body = payload = None
        if refusal is None:
            receive, body = await read_body(receive, DEFAULT_MAX_REQUEST_BODY_SIZE)
            payload = _parsed(body)
            refusal = await self._scope_refusal(check, payload, tenant, connector)
        if refusal is not None:
            status, refused, extra = refusal
            await json_answer(send, status, refused, extra)
            await aevent_record(
                kind="mcp.unauthenticated" if token is None else "mcp.rejected",
                outcome=Event.Outcome.DENIED,
                tenant_id=check.tenant_id,
                connector_id=check.connector_id,
                client_id=check.token_client_id or "",
                user_id=check.token_user_id,
                status_code=status,
                ip=_client_ip(scope),
                user_agent=headers.get("user-agent", ""),
                detail={
                    "error": refused["error"],
                    "error_description": refused["error_description"],
                    "method": scope["method"],
                },
                anonymous=check.token_user_id is None,
            )
            return
        if (limited := await rate_limit_refusal(check)) is not None:
            await json_answer(send, *limited)
            ip, agent = _client_ip(scope), headers.get("user-agent", "")
            await rate_limited_record(check, ip=ip, user_agent=agent)
            return

        manager = self.managers.get(check.connector_kind)
        if manager is None:
            await json_answer(
                send,
                503,
                {
                    "error": "kind_unavailable",
                    "error_description": f"Connector kind {check.connector_kind!r} "
                    "is not installed on this server",
                },
            )
            return

        scope = dict(scope)
        scope[SCOPE_KEY] = _tool_context(check, tenant, connector)
        scope[POLICY_KEY] = check.tool_policy
        observed = _Observed(body, payload, send)
        version = headers.get("mcp-protocol-version", "")
        if version in ("", *HANDSHAKE_PROTOCOL_VERSIONS):
            if (message := single_request(payload)) is not None:
                await answer_here(manager, version, message, scope, receive, observed.send)
            elif body is not None and b'"progressToken"' in body:
                # A handshake-era request that asks for progress gets an event stream, where
                # the progress (and the tool's log messages) can ride before the answer.
                manager = self.streaming_managers[check.connector_kind]
                await manager.handle_request(scope, receive, observed.send)
            else:
                await manager.handle_request(scope, receive, observed.send)
        else:
            manager = self.streaming_managers[check.connector_kind]
            await manager.handle_request(scope, receive, observed.send)
        await self._audit(check, scope[SCOPE_KEY], observed, started)
        await self._account(check, scope, headers, observed, started)

    async def _audit(self, check: BearerCheck, context: ToolContext, observed, started) -> None:
        """Keep an audit record of a tools/call (written later, in a batch)."""
        payload = observed.payload()
        if payload.get("method") != "tools/call" or not 200 <= observed.status < 300:
            return
        params = payload.get("params") if isinstance(payload.get("params"), dict) else {}
        tool = str(params.get("name", ""))[:200]
        arguments = params.get("arguments") or {}
        read_only = tool in await self._read_only_tools(check.connector_kind)
        kept, arguments = audit_arguments(
            arguments, read_only=read_only, mode=check.connector_audit_arguments
        )
        refused = context.notes.get(REFUSED)
        if refused:
            outcome, error = AuditRecord.Outcome.DENIED, refused
        elif observed.failed:
            outcome, error = AuditRecord.Outcome.ERROR, observed.error_message()
        else:
            outcome, error = AuditRecord.Outcome.OK, ""
        latency = time.monotonic() - started
        metrics_tool_call(
            tenant=context.tenant_slug,
            connector=context.connector_slug,
            outcome=outcome,
            seconds=latency,
        )
        record = audit_record_new(
            created=timezone.now() - timedelta(seconds=latency),
            tenant_id=check.tenant_id,
            connector_id=check.connector_id,
            user_id=check.token_user_id,
            username=check.username or "",
            client_id=(check.token_client_id or "")[:255],
            tool=tool,
            outcome=outcome,
            latency_ms=int(latency * 1000),
            upstream_request_id=context.notes.get(UPSTREAM_REQUEST_ID, ""),
            arguments_kept=kept,
            arguments=arguments,
            error=error[:500],
        )
        if audit_buffer.add(record) and self._audit_due is not None:
            self._audit_due.set()

    async def _scope_refusal(self, check: BearerCheck, payload, tenant: str, connector: str):
        """The step-up refusal of a tools/call of a tool whose scopes the token lacks
        (gateway.scopes); None when there is nothing to refuse."""
        if check.connector_kind not in self.managers:
            return None
        needs = await self._tool_scopes.callable_by(check)
        if not needs:
            return None
        missing = missing_scopes(payload, needs, check.token_scope)
        if not missing:
            return None
        return _insufficient_scope(
            resource_metadata_url(tenant, connector),
            [settings.MCP_SCOPE, *sorted(missing)],
            "This tool needs the scope "
            f"{' '.join(sorted(missing))}, which the token lacks: authorize again with it",
        )

    async def _read_only_tools(self, kind_slug: str) -> frozenset[str]:
        """The tools a kind declares read-only (``readOnlyHint``); a tool source's tools are
        only known per request, so none of them counts as read-only here (fail closed: their
        arguments are kept in full under the default audit setting)."""
        if kind_slug not in self._read_only:
            tools = await declared_tools(kind_slug)
            self._read_only[kind_slug] = frozenset(
                t.name for t in tools if t.annotations and t.annotations.read_only_hint
            )
        return self._read_only[kind_slug]

    async def _account(self, check: BearerCheck, scope, headers, observed, started) -> None:
        name = observed.rpc_name()
        failed = observed.status >= 400 or observed.failed
        first = self._seen.first_time(check.token_id)
        if failed or first:
            await aevent_record(
                kind="mcp.first_call" if first and not failed else "mcp.call",
                outcome=Event.Outcome.ERROR if failed else Event.Outcome.OK,
                tenant_id=check.tenant_id,
                connector_id=check.connector_id,
                client_id=check.token_client_id or "",
                user_id=check.token_user_id,
                status_code=observed.status,
                duration_ms=int((time.monotonic() - started) * 1000),
                ip=_client_ip(scope),
                user_agent=headers.get("user-agent", ""),
                detail={
                    "method": scope["method"],
                    "rpc": name,
                    "error": observed.error_text(),
                    **(_failure_cause(scope.get(SCOPE_KEY), observed) if failed else {}),
                },
            )
        else:
            call_counter.add(
                tenant_id=check.tenant_id,
                connector_id=check.connector_id,
                client_id=check.token_client_id or "",
                name=name or scope["method"],
            )


# JSON-RPC errors that say the request itself was wrong: parse error, invalid request, unknown
# method, invalid params.
_CALLERS_RPC_ERRORS = (-32700, -32600, -32601, -32602)


def _failure_cause(context: ToolContext | None, observed) -> dict:
    """Whose doing a failed request was (``cause``, a ``Cause`` or ``refused`` or
    ``connector``) and the kind's short account of it: a connector's health counts only
    ``upstream`` and ``connector`` (upstream.health)."""
    notes = context.notes if context is not None else {}
    if notes.get(REFUSED):
        return {"cause": "refused"}
    if notes.get(CAUSE):
        return {"cause": notes[CAUSE], "cause_detail": notes.get(CAUSE_DETAIL, "")}
    if 400 <= observed.status < 500 or observed.rpc_error_code() in _CALLERS_RPC_ERRORS:
        return {"cause": str(Cause.INPUT)}
    # Nobody explained it: a crash, an internal error, a tool error of a kind that blames no one.
    return {"cause": "connector", "cause_detail": observed.error_message()[:200]}


def _tool_context(check: BearerCheck, tenant: str, connector: str) -> ToolContext:
    """What the kind's tools see of this request (connectors.base.ToolContext)."""
    kind = get_kind(check.connector_kind)
    stored = check.connector_settings or {}
    # A copy: on PostgreSQL the check is an answer the gateway keeps for the next requests.
    if kind.settings_schema.has_secrets:
        connector_settings = kind.settings_schema.opened(stored, crypto.decrypt)
    else:
        connector_settings = dict(stored)
    upstream = None
    if kind.upstream is not None:
        upstream = ConnectionHandle(
            connector_id=check.connector_id,
            connector_mode=check.connector_mode,
            user_id=check.token_user_id,
        )
    return ToolContext(
        tenant_id=check.tenant_id,
        tenant_slug=tenant,
        connector_id=check.connector_id,
        connector_slug=connector,
        connector_settings=connector_settings,
        connector_mode=check.connector_mode,
        user_id=check.token_user_id,
        username=check.username or "",
        client_id=check.token_client_id or "",
        token_id=check.token_id,
        role=check.member_role or "",
        upstream=upstream,
        http=shared_http(),
        limiter=slot_limiter(),
    )


class _Observed:
    """The request (its body as read, parsed) and what was sent back: the JSON-RPC method,
    the status and whether it failed."""

    def __init__(self, body: bytes | None, payload, send) -> None:
        self.body = body or b""
        self._payload = payload
        self._send = send
        self.status = 0
        self.response = bytearray()

    async def send(self, message):
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message = dict(message)
            message["headers"] = list(message.get("headers", [])) + cors_headers()
        elif message["type"] == "http.response.body" and len(self.response) < 64 * 1024:
            self.response.extend(message.get("body", b"")[: 64 * 1024])
        await self._send(message)

    def payload(self) -> dict:
        """The JSON-RPC request, or {} when it is not one object (a batch, not JSON)."""
        return self._payload if isinstance(self._payload, dict) else {}

    def rpc_name(self) -> str:
        if self.body.lstrip().startswith(b"["):
            return "batch"
        payload = self.payload()
        method = str(payload.get("method", ""))
        params = payload.get("params")
        if method == "tools/call" and isinstance(params, dict):
            return f"tools/call:{params.get('name', '')}"
        return method

    @property
    def failed(self) -> bool:
        return b'"isError":true' in self.response or b'"error":{' in self.response

    def _answer(self) -> dict | None:
        """The JSON-RPC answer: the JSON body, or the last ``data:`` event of a stream."""
        bodies = [bytes(self.response)]
        if not self.response.lstrip().startswith(b"{"):
            bodies = [line[5:] for line in self.response.splitlines() if line.startswith(b"data:")]
        for body in reversed(bodies):
            try:
                answer = json.loads(body)
            except ValueError:
                continue
            if isinstance(answer, dict) and ("result" in answer or "error" in answer):
                return answer
        return None

    def rpc_error_code(self) -> int | None:
        """The JSON-RPC error code of the answer, if it is an error."""
        answer = self._answer()
        error = answer.get("error") if answer is not None else None
        code = error.get("code") if isinstance(error, dict) else None
        return code if isinstance(code, int) else None

    def error_message(self) -> str:
        """What the caller was told: a tool error's text or the JSON-RPC error message."""
        answer = self._answer()
        if answer is None:
            return self.error_text()
        if isinstance(answer.get("error"), dict):
            return str(answer["error"].get("message", ""))
        content = (answer.get("result") or {}).get("content") or []
        return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))

    def error_text(self) -> str:
        if not self.failed and self.status < 400:
            return ""
        return bytes(self.response[:500]).decode("utf-8", "replace")


def _refusal(check: BearerCheck, token: str | None, tenant: str, connector: str):
    """(status, body, extra headers) when the request may not reach the tools, else None."""
    metadata = resource_metadata_url(tenant, connector)
    scope = settings.MCP_SCOPE

    def unauthorized(error: str | None, description: str):
        challenge = f'Bearer resource_metadata="{metadata}", scope="{scope}"'
        if error:
            challenge += f', error="{error}", error_description="{description}"'
        return (
            401,
            {"error": error or "unauthorized", "error_description": description},
            [("www-authenticate", challenge)],
        )

    if token is None:
        return unauthorized(None, "Authorization needed: this connector uses OAuth 2.1")
    if check.token_id is None:
        return unauthorized("invalid_token", "The access token is unknown or was revoked")
    if check.token_expires is None or check.token_expires <= timezone.now():
        return unauthorized("invalid_token", "The access token has expired")
    # The audience as a relation: a token works at the connector it was issued for, under
    # whatever PUBLIC_URL, and nowhere else (a token with no audience row works nowhere).
    if check.token_connector_id != check.connector_id:
        return unauthorized("invalid_token", "The access token was issued for another connector")
    if not check.user_active:
        return unauthorized("invalid_token", "The user of this token is deactivated")
    if scope not in (check.token_scope or "").split():
        description = f"The token lacks the {scope} scope: authorize again with it"
        return _insufficient_scope(metadata, [scope], description)
    if not check.tenant_enabled or not check.connector_enabled:
        return (
            403,
            {
                "error": "connector_disabled",
                "error_description": "This connector or its tenant is disabled by its admins",
            },
            [],
        )
    if check.member_role is None:
        return (
            403,
            {
                "error": "not_a_member",
                "error_description": "The user of this token is no longer a member of the tenant",
            },
            [],
        )
    return None


def _insufficient_scope(metadata: str, scopes: list[str], description: str):
    """The step-up answer (2025-11-25 and later): 403 and a challenge naming the scopes the
    request needs; the client authorizes again with them (joined to what it asked for before)."""
    challenge = (
        f'Bearer error="insufficient_scope", scope="{" ".join(scopes)}", '
        f'resource_metadata="{metadata}", error_description="{description}"'
    )
    return (
        403,
        {"error": "insufficient_scope", "error_description": description},
        [("www-authenticate", challenge)],
    )


def _parsed(body: bytes | None):
    """The request body as JSON (None when it is not JSON, or was too long to keep)."""
    if body is None:
        return None
    try:
        return pydantic_core.from_json(body)
    except ValueError:
        return None


def _bearer(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _host_allowed(host: str) -> bool:
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    hostname = hostname.strip("[]").lower()
    allowed = settings.ALLOWED_HOSTS
    return "*" in allowed or hostname in [h.lower() for h in allowed]


def _allowed_origins() -> set[str]:
    return {settings.PUBLIC_URL, *settings.EXTRA_ALLOWED_ORIGINS}


def _client_ip(scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None
