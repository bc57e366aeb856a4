"""The body check behind the step-up challenge (gateway.scopes): what it reads and replays."""

import json

import anyio

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


def _check(payload, token_scope="mcp"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()

    async def run():
        replay, missing = await missing_scopes(_receive(body), NEEDS, token_scope)
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
        return missing

    return anyio.run(run)


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
    assert _check(b'{"jsonrpc": "2.0", "method": "tools/call", "params": ') == set()
    assert _check({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": []}) == set()
