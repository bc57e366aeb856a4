"""A plain handshake-era request is answered in the gateway's own task (gateway.dispatch), and
answered byte for byte as the SDK's stateless JSON transport answers it; everything else still
goes to the SDK."""

import json

import anyio
import pytest
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from connectors.base import SCOPE_KEY, ToolContext
from gateway.asgi import _parsed, _session_manager
from gateway.dispatch import answer_here, single_request
from gateway.policy import install_tool_policy
from tests.support.flow import OAuthClient, mcp_post
from tests.support.kinds import _build_server
from tests.support.oauth import Browser

VERSION = "2025-06-18"


def _request(method, params=None, id_=1):
    message = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return message


# What clients send, including the ways they get it wrong that still parse as one request.
SAME_ANSWER = [
    _request("tools/call", {"name": "echo", "arguments": {"text": "hi"}}),
    _request("tools/call", {"name": "echo", "arguments": {"text": "héllo ✓"}}, id_="a-string-id"),
    _request("tools/call", {"name": "whoami", "arguments": {}}),  # structured content
    _request("tools/call", {"name": "fail", "arguments": {"message": "no"}}),  # a tool error
    _request("tools/call", {"name": "echo", "arguments": {}}),  # a missing argument
    _request("tools/call", {"name": "echo", "arguments": {"text": 5}}),  # a wrong type
    _request("tools/call", {"name": "no_such_tool", "arguments": {}}),
    _request("tools/call", {"arguments": {}}),  # no tool name: invalid params
    _request("tools/call"),
    _request("tools/list"),
    _request("tools/list", {"cursor": "not-a-cursor"}),
    _request("ping"),
    _request("prompts/list"),
    _request("resources/list"),
    _request("no/such/method"),
    _request(
        "initialize",
        {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    ),
]

# Left to the SDK: not one plain request.
FOR_THE_SDK = [
    b"not json",
    b"[]",
    json.dumps([_request("ping")]).encode(),  # a batch
    json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 1, "result": {}}).encode(),  # a response
    json.dumps({"jsonrpc": "1.0", "id": 1, "method": "ping"}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": True, "method": "ping"}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "extra": 1}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": []}).encode(),
    json.dumps(_request("tools/call", {"name": "echo", "_meta": {"progressToken": "p"}})).encode(),
]


def _context() -> ToolContext:
    return ToolContext(
        tenant_id=1,
        tenant_slug="acme",
        connector_id=2,
        connector_slug="echo",
        connector_settings={"homepage": "https://example.com"},
        connector_mode="shared",
        user_id=3,
        username="bob",
        client_id="client",
        token_id=4,
    )


def _scope(body: bytes) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"mcp-protocol-version", VERSION.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        SCOPE_KEY: _context(),
    }


async def _exchange(handle, body: bytes) -> tuple[int, dict, bytes]:
    sent = []
    received = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if received:
            return received.pop(0)
        await anyio.sleep_forever()

    async def send(message):
        sent.append(message)

    await handle(_scope(body), receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


def _both(bodies: list[bytes]):
    """For each body: the SDK transport's answer, and the lean path's (None if it declines)."""
    server = _build_server()
    install_tool_policy(server)
    manager = _session_manager(server, json_response=True)
    answers = []

    async def run():
        async with manager.run():
            for body in bodies:
                sdk = await _exchange(manager.handle_request, body)
                message = single_request(_parsed(body))
                lean = None
                if message is not None:

                    async def here(scope, receive, send, message=message):
                        await answer_here(manager, VERSION, message, scope, receive, send)

                    lean = await _exchange(here, body)
                answers.append((sdk, lean))

    anyio.run(run)
    return answers


def test_plain_requests_get_the_sdk_transports_answer_byte_for_byte():
    bodies = [json.dumps(message).encode() for message in SAME_ANSWER]
    for message, (sdk, lean) in zip(SAME_ANSWER, _both(bodies), strict=True):
        assert lean is not None, f"{message} should be answered by the gateway"
        sdk_status, sdk_headers, sdk_body = sdk
        lean_status, lean_headers, lean_body = lean
        assert (lean_status, lean_body) == (sdk_status, sdk_body), message
        assert lean_headers["content-type"] == sdk_headers["content-type"]
        assert int(lean_headers["content-length"]) == len(lean_body)


def test_everything_else_is_left_to_the_sdk():
    for body in FOR_THE_SDK:
        assert single_request(_parsed(body)) is None, body


@pytest.mark.django_db(transaction=True)
def test_the_sdk_transport_is_off_the_path_of_a_plain_request(live_url, acme, monkeypatch):
    """What the lean path saves: a plain tools/call never reaches the SDK's session manager,
    while a batch still does (and is answered by it)."""
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)["access_token"]
    url = acme["connector"].url
    reached = []
    original = StreamableHTTPSessionManager.handle_request

    async def spy(self, scope, receive, send):
        reached.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(StreamableHTTPSessionManager, "handle_request", spy)
    call = _request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    answer = mcp_post(url, token, call)
    assert answer.status_code == 200 and answer.json()["result"]["content"][0]["text"] == "hi"
    assert reached == []
    assert mcp_post(url, token, [call]).status_code in (200, 400)
    assert len(reached) == 1
