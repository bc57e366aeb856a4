"""The gateway's exception boundary: whatever escapes a request is answered in JSON-RPC's shape.

Without it an exception (the database restarting under a bearer check) reaches uvicorn, which
answers a plain-text ``500 Internal Server Error`` that no MCP client can read. An outage of a
backing service (config.faults) is a 503 with ``Retry-After``; anything else a 500, logged with
the request's id. An exception after the answer was sent (a trace row written after a refusal)
cannot change it: it is logged and the request ends cleanly.
"""

import logging

from config.faults import RETRY_AFTER, unavailable
from gateway.answers import json_answer, rpc_error

log = logging.getLogger(__name__)

# JSON-RPC 2.0's range for implementation-defined server errors, and its internal error.
UNAVAILABLE_CODE = -32000
INTERNAL_ERROR_CODE = -32603


async def serve_within_boundary(serve, scope, receive, send, *args) -> None:
    """``await serve(scope, receive, send, *args)``, answering any exception it raises."""
    started = False

    async def tracked(message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await serve(scope, receive, tracked, *args)
    except Exception as exc:
        dependency = unavailable(exc)
        if dependency is not None:
            log.warning("MCP request failed: the %s is unavailable (%r)", dependency, exc)
        else:
            log.exception("MCP request failed")
        if started:
            return
        if dependency is not None:
            message = f"The service is temporarily unavailable: try again in {RETRY_AFTER} seconds"
            await _answer(send, 503, UNAVAILABLE_CODE, message, [("retry-after", str(RETRY_AFTER))])
        else:
            await _answer(send, 500, INTERNAL_ERROR_CODE, "Internal error (logged on the server)")


async def _answer(send, status: int, code: int, message: str, extra=()) -> None:
    await json_answer(send, status, rpc_error(message, code), list(extra))
