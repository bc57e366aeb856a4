"""The gateway's own answers (refusals, errors): JSON with the gateway's CORS headers, so a
browser-based client can read them, and the JSON-RPC error body they carry."""

import json
from typing import Any

from authserver.middleware import ALLOW_HEADERS, EXPOSE_HEADERS

# JSON-RPC 2.0: the request is not a valid one (the transport's code for its own refusals).
INVALID_REQUEST = -32600


def rpc_error(message: str, code: int = INVALID_REQUEST, **extra: Any) -> dict:
    """A JSON-RPC error response answering no particular request (``extra``: e.g. ``id=None``,
    ``data=...``)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if "data" in extra:
        error["data"] = extra.pop("data")
    return {"jsonrpc": "2.0", **extra, "error": error}


def cors_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", b"*"),
        (b"access-control-allow-methods", b"POST, OPTIONS"),
        (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
        (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
        (b"access-control-max-age", b"86400"),
    ]


async def respond(send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    raw = [(k.encode(), v.encode()) for k, v in headers] + cors_headers()
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def json_answer(
    send, status: int, body: dict, extra: list[tuple[str, str]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(payload))),
        ("cache-control", "no-store"),
        *(extra or []),
    ]
    await respond(send, status, payload, headers)
