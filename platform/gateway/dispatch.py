"""A handshake-era request answered in the gateway's own task, as the SDK's stateless JSON
transport would answer it, without that transport's per-request machinery.

For every stateless POST the SDK's handshake-era transport (mcp 2.3,
``StreamableHTTPSessionManager._handle_stateless_request``) builds a transport, two memory
streams, a JSON-RPC dispatcher and a task to run it, and routes the one request and its one
answer through them: about a third of what a tools/call costs the bare SDK server here
(bench/gateway_calls.py). None of it does anything for a single request answered with a JSON
body: there is no session, no back channel (the client's reply to a server request would have
nowhere to land) and no stream for notifications. So a request of that shape is handed to the
SDK's own single-request driver (``serve_one``, which the SDK's 2026-07-28 entry uses), under
the same connection the stateless transport makes (born ready, at the header's version), with
the same dispatch context (no back channel; notifications have no wire in JSON mode), and its
answer or error is written as the transport writes it (status 200, the dispatcher's error
mapping). The server's middleware, handlers and serialization are the SDK's, unchanged.

Anything else (a notification, a response, a batch, malformed JSON or envelope, a request that
asks for progress, a body over the SDK's size limit, which the gateway does not parse) goes to
the SDK, which answers as before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pydantic_core
from mcp.server.connection import Connection
from mcp.server.runner import serve_one
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import DEFAULT_NEGOTIATED_VERSION, ErrorData, JSONRPCError
from starlette.requests import Request

log = logging.getLogger(__name__)

_ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "method", "params"})
_RESERVED_META_PREFIX = "io.modelcontextprotocol/"
_TRANSPORT = TransportContext(kind="streamable-http", can_send_request=False)


def single_request(message) -> dict | None:
    """``message`` (a parsed request body) when it is one JSON-RPC request that can be answered
    here exactly as the SDK's stateless JSON transport would answer it; None when the SDK
    should see it."""
    if not isinstance(message, dict) or not message.keys() <= _ENVELOPE_KEYS:
        return None
    request_id, params = message.get("id"), message.get("params", {})
    if (
        message.get("jsonrpc") != "2.0"
        or not isinstance(message.get("method"), str)
        or not isinstance(request_id, int | str)
        or isinstance(request_id, bool)
        or not isinstance(params, dict)
    ):
        return None
    meta = params.get("_meta")
    if meta is not None and (
        not isinstance(meta, dict)
        or "progressToken" in meta
        or any(str(key).startswith(_RESERVED_META_PREFIX) for key in meta)
    ):
        return None
    return message


@dataclass
class _SingleExchange:
    """The dispatch context of one request answered with one JSON body (mcp's
    ``DispatchContext``): no back channel, and notifications have nowhere to go."""

    message_metadata: ServerMessageMetadata
    request_id: str | int
    transport: TransportContext = _TRANSPORT
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = False

    async def send_raw_request(self, method: str, params: Mapping[str, Any] | None, opts=None):
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts=None) -> None:
        return None

    async def progress(self, progress: float, total=None, message=None) -> None:
        return None


async def answer_here(manager, version: str, message: dict, scope, receive, send) -> None:
    """Answer ``message`` with ``manager``'s server (an SDK stateless JSON session manager,
    running) as its transport would: the JSON-RPC answer as the body of a 200."""
    body = await answer(
        manager.app,
        # Entered by the manager's run() (StreamableHTTPSessionManager keeps it private).
        manager._lifespan_state,
        version or DEFAULT_NEGOTIATED_VERSION,
        message,
        Request(scope, receive),
    )
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def answer(server, lifespan_state, protocol_version: str, message: dict, request) -> bytes:
    """The JSON-RPC answer (bytes of the JSON body) of ``server`` to ``message``."""
    request_id = message["id"]
    dctx = _SingleExchange(
        message_metadata=ServerMessageMetadata(request_context=request, can_send_request=False),
        request_id=request_id,
    )
    connection = Connection.from_envelope(protocol_version, None, None)
    try:
        result = await serve_one(
            server,
            dctx,
            message["method"],
            message.get("params"),
            connection=connection,
            lifespan_state=lifespan_state,
        )
    except Exception as exc:
        # The handshake-era dispatcher's mapping (mcp.shared.jsonrpc_dispatcher._handle_request).
        error = handler_exception_to_error_data(exc)
        if error is None:
            log.exception("handler for %r raised", message["method"])
            error = ErrorData(code=0, message=str(exc))
        reply = JSONRPCError(jsonrpc="2.0", id=request_id, error=error)
        return reply.model_dump_json(by_alias=True, exclude_unset=True).encode()
    return pydantic_core.to_json({"jsonrpc": "2.0", "id": request_id, "result": result})
