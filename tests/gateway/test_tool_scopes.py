"""The body check behind the step-up challenge (gateway.scopes), and the body read before it
(gateway.body): what is read, and that the SDK gets exactly what the client sent."""

import json

import anyio

from gateway.body import read_body
from gateway.scopes import missing_scopes

NEEDS = {"create_customer": frozenset({"quickbooks.write"})}


def _receive(body: bytes, chunk: int = 7):
    """An ASGI receive that hands ``body`` over in small pieces, then a disconnect."""
    messages = [
        {"type": "http.request", "body": body[i : i + chunk], "more_body": i + chunk < len(body)}
        for i in range(0, len(body), chunk)
    ] + [{"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0)

    return receive


def _read_then_replay(body: bytes, limit: int):
    async def run():
        replay, read = await read_body(_receive(body), limit)
        replayed = b""
        while True:
            message = await replay()
            if message["type"] != "http.request":
                break
            replayed += message["body"]
            if not message["more_body"]:
                break
        assert replayed == body  # the SDK reads exactly what the client sent
        assert (await replay())["type"] == "http.disconnect"
        return read

    return anyio.run(run)


def test_the_body_is_read_once_and_replayed_as_it_came():
    body = json.dumps(_call("create_customer")).encode()
    assert _read_then_replay(body, limit=1000) == body


def test_a_body_over_the_limit_is_not_kept_and_still_reaches_the_sdk_whole():
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}'
    assert _read_then_replay(body, limit=20) is None


def _check(payload, token_scope="mcp"):
    return missing_scopes(payload, NEEDS, token_scope)


def _call(name, id_=1):
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name}}


def test_a_call_of_a_scoped_tool_names_the_missing_scope():
    assert _check(_call("create_customer")) == {"quickbooks.write"}
    assert _check(_call("create_customer"), "mcp quickbooks.write") == set()
    assert _check(_call("company_info")) == set()
    assert _check({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) == set()


def test_a_batch_is_checked_message_by_message():
    assert _check([_call("company_info", 1), _call("create_customer", 2)]) == {"quickbooks.write"}


def test_a_malformed_body_is_left_to_the_sdk():
    assert _check(None) == set()  # not JSON
    assert _check({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": []}) == set()
