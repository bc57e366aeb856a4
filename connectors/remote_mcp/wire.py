"""Talking to the upstream MCP server: one JSON-RPC request in, its raw result out.

Results are returned as the upstream sent them (dicts), never parsed into models and
re-serialized, so content of every type, ``structuredContent``, ``isError`` and fields this
code does not know reach the client untouched.

Protocol generations: an upstream that answers ``server/discover`` with 2026-07-28 gets
stateless requests (the per-request envelope; no session). Any other upstream gets the
``initialize`` handshake once; its ``Mcp-Session-Id`` is kept (per credential, in this
process) and reused until the upstream answers 404 for it, when the session is opened again.

During one request the upstream may send messages of its own on the response stream:
notifications (progress, log messages, list changes) and, from servers of the handshake
generations, requests (elicitation, sampling, roots). Notifications go to ``on_notification``
and to the request's ``Relay`` (the client of the call); requests are put to the relay, whose
answer is posted back to the upstream in its session, and the stream is read on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Protocol

import httpx
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    METHOD_NOT_FOUND,
    PROTOCOL_VERSION_META_KEY,
)
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from connectors.base import refused_by_guard

log = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
CLIENT_INFO = {"name": "mcp-connector-platform", "version": "1"}
ACCEPT = "application/json, text/event-stream"


class UpstreamFailure(Exception):
    """The upstream could not answer (refused, timed out, 5xx, not MCP): ``str()`` says what
    happened and where, without credentials. ``status``: the HTTP status, if there was one."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class UpstreamAuthRejected(UpstreamFailure):
    """The upstream refused our credential (401 or 403)."""


class UpstreamRPCError(Exception):
    """The upstream answered with a JSON-RPC error; forwarded to the client as it came."""

    def __init__(self, error: dict[str, Any]):
        super().__init__(str(error.get("message", "")))
        self.error = error


class _SessionGone(Exception):
    pass


@dataclass(frozen=True)
class Era:
    """How to talk to one upstream with one credential."""

    version: str
    session_id: str | None = None
    instructions: str = field(default="", compare=False)  # what the upstream tells clients

    @property
    def modern(self) -> bool:
        return self.version == LATEST_MODERN_VERSION


class Sessions:
    """Eras and upstream session ids per (upstream URL, credential key), in this process.

    Another process (or replica) opens its own session: an upstream session is a cache, never
    state the platform depends on. So only the ``size`` most recently used are kept (a
    process would otherwise hold one for every connection and member it ever served); a
    forgotten one is negotiated again on its next call.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._items: OrderedDict[str, Era] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Era | None:
        with self._lock:
            era = self._items.get(key)
            if era is not None:
                self._items.move_to_end(key)
            return era

    def put(self, key: str, era: Era) -> None:
        with self._lock:
            self._items[key] = era
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop(self, key: str, era: Era | None = None) -> None:
        with self._lock:
            if era is None or self._items.get(key) == era:
                self._items.pop(key, None)


SESSIONS = Sessions()
_ids = count(1)

Notify = Callable[[dict[str, Any]], None]
# What the platform can answer for the client in the upstream's session (declared at initialize;
# a client that cannot answer a request gets its error relayed).
RELAYED_CAPABILITIES = {"elicitation": {"form": {}, "url": {}}, "sampling": {}, "roots": {}}


class Relay(Protocol):
    """The client of one forwarded request, as the upstream's messages during it reach it."""

    async def notify(self, message: dict[str, Any]) -> None:
        """An upstream notification (progress, log message) on this request's stream."""
        ...

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        """An upstream request (elicitation, sampling, roots); returns ``{"result": ...}`` or
        ``{"error": {...}}`` to answer it with."""
        ...


def cannot_answer(method: str, why: str) -> dict[str, Any]:
    return {"error": {"code": METHOD_NOT_FOUND, "message": f"{method} cannot be answered: {why}"}}


class UpstreamClient:
    """One upstream MCP endpoint as seen with one credential.

    ``headers`` carry the credential (never logged); ``key`` names the credential for the
    session cache (a connection id, never the secret itself); ``on_notification`` sees every
    notification the upstream sends on a response stream (list_changed invalidates caches).
    """

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        key: str = "",
        sessions: Sessions = SESSIONS,
        on_notification: Notify | None = None,
        client_capabilities: dict[str, Any] | None = None,
        param_headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.http = http
        self.headers = headers or {}
        self.timeout = timeout
        self.key = f"{url} {key}"
        self.sessions = sessions
        self.on_notification = on_notification
        # Declared per request to a 2026-07-28 upstream: the client's own (what it can be asked).
        self.client_capabilities = client_capabilities or {}
        # A 2026-07-28 tools/call mirrors some arguments in Mcp-Param-* headers (x-mcp-header).
        self.param_headers = param_headers or {}
        self.steps: list[str] = []

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, relay: Relay | None = None
    ) -> dict[str, Any]:
        """Send one request; returns its raw result or raises UpstreamRPCError/UpstreamFailure.
        ``relay`` gets what the upstream sends the client while it answers."""
        era = self.sessions.get(self.key)
        if era is None:
            era = await self.open()
        try:
            return await self._send(era, method, params, relay)
        except _SessionGone:
            self.steps.append("upstream session expired (404): opening a new one")
            self.sessions.drop(self.key, era)
            era = await self.open()
            try:
                return await self._send(era, method, params, relay)
            except _SessionGone:
                raise UpstreamFailure(
                    f"{self.url} lost the new MCP session at once (404 again)"
                ) from None

    async def era(self) -> Era:
        """How this upstream is spoken to (opened now if this process has not yet)."""
        return self.sessions.get(self.key) or await self.open()

    async def open(self) -> Era:
        """Find out what the upstream speaks; open a session where it needs one."""
        try:
            result = await self._send(Era(LATEST_MODERN_VERSION), "server/discover", {})
        except (UpstreamRPCError, _SessionGone):
            result = None
        except UpstreamFailure as exc:
            if isinstance(exc, UpstreamAuthRejected) or exc.status not in (400, 405):
                raise
            result = None  # pre-2026 servers refuse the modern envelope with a 400
        if result is not None and LATEST_MODERN_VERSION in result.get("supportedVersions", []):
            era = Era(LATEST_MODERN_VERSION, instructions=_text(result.get("instructions")))
            self.steps.append("upstream speaks 2026-07-28: stateless requests")
        else:
            era = await self._initialize()
        self.sessions.put(self.key, era)
        return era

    async def _initialize(self) -> Era:
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": RELAYED_CAPABILITIES,
            "clientInfo": CLIENT_INFO,
        }
        response, result = await self._post(None, "initialize", params, Era(""))
        version = str(result.get("protocolVersion") or LATEST_HANDSHAKE_VERSION)
        era = Era(
            version,
            response.headers.get(SESSION_HEADER),
            instructions=_text(result.get("instructions")),
        )
        await self._notify(era, "notifications/initialized")
        self.steps.append(
            f"upstream initialized ({version}"
            + (", session kept)" if era.session_id else ", no session)")
        )
        return era

    async def _send(
        self, era: Era, method: str, params: dict[str, Any] | None, relay: Relay | None = None
    ) -> dict:
        params = dict(params or {})
        if era.modern:
            meta = dict(params.get("_meta") or {})
            meta.update(
                {
                    PROTOCOL_VERSION_META_KEY: era.version,
                    CLIENT_CAPABILITIES_META_KEY: self.client_capabilities,
                    CLIENT_INFO_META_KEY: CLIENT_INFO,
                }
            )
            params["_meta"] = meta
        _, result = await self._post(next(_ids), method, params, era, relay)
        return result

    def _headers(self, era: Era, method: str, params: dict | None) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Content-Type": "application/json", **self.headers}
        if era.version:
            headers[MCP_PROTOCOL_VERSION_HEADER] = era.version
        if era.session_id:
            headers[SESSION_HEADER] = era.session_id
        if era.modern:
            headers[MCP_METHOD_HEADER] = method
            name_key = NAME_BEARING_METHODS.get(method)
            if name_key and isinstance((params or {}).get(name_key), str):
                headers[MCP_NAME_HEADER] = encode_header_value(params[name_key])
            if method == "tools/call":
                headers.update(self.param_headers)
        return headers

    async def _notify(self, era: Era, method: str) -> None:
        await self._deliver(era, {"jsonrpc": "2.0", "method": method}, method, check=False)

    async def _deliver(self, era: Era, body: dict, what: str, *, check: bool = True) -> None:
        """POST a message that gets no answer of its own (a notification, a response)."""
        try:
            response = await self.http.post(
                self.url,
                content=json.dumps(body),
                headers=self._headers(era, body.get("method", ""), None),
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise UpstreamFailure(f"{self.url} did not take {what}: {_describe(exc)}") from None
        if check and response.status_code >= 400:
            raise UpstreamFailure(
                f"{self.url} did not take {what} (HTTP {response.status_code})",
                status=response.status_code,
            )

    async def _post(self, request_id, method: str, params, era: Era, relay: Relay | None = None):
        body = {"jsonrpc": "2.0", "id": request_id or next(_ids), "method": method}
        if params is not None:
            body["params"] = params
        request = self.http.build_request(
            "POST",
            self.url,
            content=json.dumps(body),
            headers=self._headers(era, method, params),
            timeout=self.timeout,
        )
        where = f"{self.url} ({method})"
        try:
            response = await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._failure(where, exc, "could not be reached") from None
        try:
            if response.status_code == 404 and era.session_id:
                raise _SessionGone()
            if response.status_code in (401, 403):
                raise UpstreamAuthRejected(
                    f"{where} refused the credential (HTTP {response.status_code})",
                    status=response.status_code,
                )
            if response.status_code >= 400:
                text = (await response.aread())[:200].decode("utf-8", "replace")
                error = _rpc_error(text)
                if error is not None and response.status_code < 500:
                    raise UpstreamRPCError(error)
                raise UpstreamFailure(
                    f"{where} answered HTTP {response.status_code}: {text}",
                    status=response.status_code,
                )
            message = await self._read(response, body["id"], where, era, relay)
        except httpx.HTTPError as exc:
            raise self._failure(where, exc, "broke off its answer") from None
        finally:
            await response.aclose()
        if "error" in message:
            if not isinstance(message["error"], dict):
                raise UpstreamFailure(f"{where} sent a malformed JSON-RPC error")
            raise UpstreamRPCError(message["error"])
        if not isinstance(message.get("result"), dict):
            raise UpstreamFailure(f"{where} sent a JSON-RPC response without a result object")
        return response, message["result"]

    def _failure(self, where: str, exc: httpx.HTTPError, what: str) -> UpstreamFailure:
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamFailure(
                f"{where} did not answer within {self.timeout:g} s; the call was cut off"
            )
        return UpstreamFailure(f"{where} {what}: {_describe(exc)}")

    async def _read(
        self, response: httpx.Response, request_id, where: str, era: Era, relay: Relay | None
    ) -> dict:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            payload = _parse(await response.aread(), where)
            return _response_for(payload, request_id, where)
        if kind == "text/event-stream":
            async for data in _sse_data(response):
                payload = _parse(data.encode(), where)
                if isinstance(payload, dict) and "id" not in payload and "method" in payload:
                    self._notified(payload)
                    if relay is not None:
                        await relay.notify(payload)
                    continue
                if isinstance(payload, dict) and "method" in payload:
                    await self._answer(era, payload, relay)
                    continue
                return _response_for(payload, request_id, where)
            raise UpstreamFailure(f"{where} closed its event stream without an answer")
        raise UpstreamFailure(
            f"{where} answered with {kind or 'no content type'}, not MCP (JSON or event stream)"
        )

    async def _answer(self, era: Era, request: dict, relay: Relay | None) -> None:
        """Answer a request the upstream sent us mid-call, in its session."""
        method = str(request.get("method"))
        if method == "ping":
            answer: dict[str, Any] = {"result": {}}
        elif relay is None:
            answer = cannot_answer(method, "nothing is waiting for it on the platform")
        else:
            answer = await relay.ask(request)
        await self._deliver(
            era, {"jsonrpc": "2.0", "id": request.get("id"), **answer}, f"the answer to {method}"
        )

    def _notified(self, payload: dict) -> None:
        if self.on_notification is not None:
            self.on_notification(payload)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _parse(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise UpstreamFailure(f"{where} sent malformed JSON-RPC (not JSON)") from None


def _response_for(payload: Any, request_id, where: str) -> dict:
    if not isinstance(payload, dict) or payload.get("jsonrpc") != "2.0":
        raise UpstreamFailure(f"{where} sent malformed JSON-RPC (no jsonrpc 2.0 object)")
    if payload.get("id") != request_id:
        raise UpstreamFailure(f"{where} answered another request id ({payload.get('id')!r})")
    return payload


def _rpc_error(text: str) -> dict | None:
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) and "code" in error else None


async def _sse_data(response: httpx.Response):
    """The data of each event of a text/event-stream response."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def _describe(exc: httpx.HTTPError) -> str:
    refused = refused_by_guard(exc)
    if refused is not None:
        return f"refused by the platform: {refused}"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable"
    return type(exc).__name__
