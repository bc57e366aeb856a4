"""What every emulated endpoint does first: name itself, then play any injected fault."""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import Response

from .faults import DroppedConnection
from .state import Emulator

ENDPOINT_SCOPE_KEY = "intuit_emulator.endpoint"
# Set on the scope when the response must be lost after the work is done (see the middleware).
DROP_RESPONSE_SCOPE_KEY = "intuit_emulator.drop_response"


def emulator_of(request: Request) -> Emulator:
    return request.app.state.emulator


async def enter_endpoint(request: Request, endpoint: str) -> Response | None:
    """Label the request with its endpoint name; a response here replaces the real one."""
    request.scope[ENDPOINT_SCOPE_KEY] = endpoint
    emulator = emulator_of(request)
    fault = emulator.take_fault(endpoint)
    if fault is None:
        return None
    if fault.delay:
        # Real seconds on purpose: a slow response exercises the client's timeouts.
        await anyio.sleep(fault.delay)
    if fault.kind == "slow":
        return None
    if fault.kind == "drop_after":
        request.scope[DROP_RESPONSE_SCOPE_KEY] = True
        return None
    if fault.kind == "drop":
        return DroppedConnection()
    return fault.response(emulator.clock.now())
