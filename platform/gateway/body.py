"""The request body, read before the SDK reads it, and handed on to it as it came."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]


async def read_body(receive: Receive, limit: int) -> tuple[Receive, bytes | None]:
    """The request's body (None once it grows past ``limit`` bytes: the rest is left unread),
    and a ``receive`` that replays exactly the messages read, then goes on receiving."""
    messages, body = [], bytearray()
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        body.extend(message.get("body", b""))
        if len(body) > limit:
            body = None
            break
        if not message.get("more_body"):
            break

    async def replay() -> dict[str, Any]:
        return messages.pop(0) if messages else await receive()

    return replay, None if body is None else bytes(body)
