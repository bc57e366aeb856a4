"""What the upstream sends the client during a forwarded call, and the client's answers.

- ``notifications/progress`` (the client's ``progressToken`` is forwarded as it came) and
  ``notifications/message`` ride the client's request stream: always for 2026-07-28 clients
  (log messages at the level they opted into), and for older clients whose request carries a
  ``progressToken`` (the gateway answers those with an event stream).
- Requests from upstreams of the handshake generations (``elicitation/create``,
  ``sampling/createMessage``, ``roots/list``): a 2026-07-28 client that declared the
  capability is asked through the input-required round trip. The upstream call stays open,
  parked in this process; the client gets ``resultType: input_required`` with the question,
  and its retry (``inputResponses``, ``requestState`` naming the parked call) is posted back to
  the upstream in its session, and the stream is read on. Clients of the handshake generations
  cannot be asked: the gateway is stateless, so a request to them has no way back; the upstream
  gets an error answer, as from a client without the capability.
- A 2026-07-28 upstream asks by returning ``input_required`` itself: the result and the
  client's retry pass through untouched (the SDK's boundary seals ``requestState`` again).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable
from typing import Any

from mcp.server.connection import allowed_log_levels
from mcp_types import LOG_LEVEL_META_KEY, LoggingMessageNotification, ProgressNotification
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from connectors.remote_mcp.wire import cannot_answer

log = logging.getLogger(__name__)

PARKED_PREFIX = "remote_mcp.parked:"
PARK_SECONDS = 300.0  # how long a question waits for the client's retry
ASKABLE = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}
RELAYED = {
    "notifications/progress": ProgressNotification,
    "notifications/message": LoggingMessageNotification,
}


class ClientRelay:
    """The client of the current request (``bind`` moves it to the next round's request)."""

    def __init__(self, ctx) -> None:
        self.questions: asyncio.Queue | None = None
        self.param_headers: dict[str, str] = {}  # Mcp-Param-* of the forwarded call
        self.bind(ctx)

    def bind(self, ctx) -> None:
        self.ctx = ctx
        self.version = ctx.protocol_version
        self.modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        meta = (ctx.params or {}).get("_meta") or {}
        self.log_levels = allowed_log_levels(ctx.protocol_version, meta)
        declared = ctx.session.client_capabilities
        self.capabilities = (
            declared.model_dump(by_alias=True, exclude_none=True, mode="json") if declared else {}
        )

    @property
    def log_level(self) -> str | None:
        """The log level to ask a 2026-07-28 upstream for on this client's behalf: its own
        opt-in; for an older client (every level, as with no logging/setLevel) only when its
        request gets a stream the messages can ride."""
        meta = (self.ctx.params or {}).get("_meta") or {}
        if self.modern:
            return meta.get(LOG_LEVEL_META_KEY)
        return "debug" if "progressToken" in meta else None

    @property
    def can_be_asked(self) -> bool:
        return self.modern and any(c in self.capabilities for c in ASKABLE.values())

    @property
    def upstream_capabilities(self) -> dict[str, Any]:
        """What a 2026-07-28 upstream may ask this client (through input_required)."""
        return self.capabilities if self.modern else {}

    async def notify(self, message: dict[str, Any]) -> None:
        model = RELAYED.get(str(message.get("method")))
        if model is None:
            return
        params = message.get("params") or {}
        if model is LoggingMessageNotification and params.get("level") not in self.log_levels:
            return
        try:
            notification = model.model_validate(message)
            await self.ctx.session.send_notification(
                notification, related_request_id=self.ctx.request_id
            )
        except Exception as exc:  # a malformed one, or the client's request is over
            log.debug("upstream %s not relayed: %s", message.get("method"), exc)

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        method = str(message.get("method"))
        capability = ASKABLE.get(method)
        if capability is None:
            return cannot_answer(method, "the platform relays only elicitation, sampling, roots")
        if not self.modern:
            return cannot_answer(
                method,
                f"the client speaks MCP {self.version}, and through this stateless platform only "
                "2026-07-28 clients can be asked (the input-required round trip)",
            )
        if self.capabilities.get(capability) is None:
            return cannot_answer(method, f"the client did not declare the {capability} capability")
        if self.questions is None:
            return cannot_answer(method, "only tool calls can ask the client")
        answer: asyncio.Future = asyncio.get_running_loop().create_future()
        await self.questions.put((message, answer))
        return await answer


class ParkedCalls:
    """Calls waiting for a client's answer, in this process, for PARK_SECONDS at most."""

    def __init__(self) -> None:
        self._items: dict[str, Call] = {}

    def park(self, call: Call) -> str:
        ident = secrets.token_urlsafe(24)
        self._items[ident] = call
        asyncio.get_running_loop().call_later(PARK_SECONDS, self._expire, ident)
        return PARKED_PREFIX + ident

    def take(self, state: str, owner: str) -> Call | None:
        """The parked call ``state`` names, if it waits here for ``owner``'s answer."""
        call = self._items.get(state.removeprefix(PARKED_PREFIX))
        if call is None or call.owner != owner:
            return None
        del self._items[state.removeprefix(PARKED_PREFIX)]
        return call

    def _expire(self, ident: str) -> None:
        call = self._items.pop(ident, None)
        if call is not None:
            call.task.cancel()  # closes the upstream's stream: the upstream sees us go


PARKED = ParkedCalls()


class Call:
    """One forwarded call that may stop to ask the client (see the module's text)."""

    def __init__(self, relay: ClientRelay, forwarded: Awaitable[dict], owner: str) -> None:
        self.relay = relay
        self.owner = owner
        relay.questions = asyncio.Queue()
        # Detached from the client's request: while parked it outlives that request.
        self.task = asyncio.ensure_future(forwarded)
        self.asked: tuple[str, asyncio.Future] | None = None

    async def next(self, parked: ParkedCalls = PARKED) -> dict[str, Any]:
        """The upstream's result, or an input_required result with its next question."""
        assert self.relay.questions is not None
        question = asyncio.ensure_future(self.relay.questions.get())
        try:
            await asyncio.wait({self.task, question}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the client went away: so does the upstream call
            question.cancel()
            self.task.cancel()
            raise
        if self.task.done():
            question.cancel()
            return self.task.result()
        message, answer = question.result()
        key = f"upstream-{message.get('id')}"
        self.asked = (key, answer)
        request = {"method": message["method"]}
        if message.get("params") is not None:
            request["params"] = message["params"]
        return {
            "resultType": "input_required",
            "inputRequests": {key: request},
            "requestState": parked.park(self),
        }

    def answer(self, ctx, responses: dict[str, Any]) -> str | None:
        """Hand the client's answer to the waiting upstream; a reason when there is none."""
        assert self.asked is not None
        key, answer = self.asked
        if key not in responses:
            self.task.cancel()
            return f"the retry did not answer the upstream's question {key}"
        self.relay.bind(ctx)
        answer.set_result({"result": responses[key]})
        return None
