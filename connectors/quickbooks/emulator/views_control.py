"""`/_emulator/...`: steer the emulator over HTTP (clock, faults, settings, companies, counters).

The same operations are methods of `Emulator` for in-process tests; these endpoints serve tests
and tools that only see the emulator from outside its process.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .gate import emulator_of


class _BadRequest(Exception):
    pass


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        payload = json.loads(raw)
    except ValueError:
        raise _BadRequest("body must be JSON") from None
    if not isinstance(payload, dict):
        raise _BadRequest("body must be a JSON object")
    return payload


def _handles_bad_input(view):
    async def wrapped(request: Request) -> Response:
        try:
            return await view(request)
        except (_BadRequest, ValueError, TypeError, KeyError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)

    return wrapped


@_handles_bad_input
async def state(request: Request) -> Response:
    emulator = emulator_of(request)
    with emulator.lock:
        body = {
            "now": emulator.clock.now().isoformat(),
            "clock_frozen": emulator.clock.frozen,
            "base_url": emulator.base_url,
            "companies": [
                {"realm_id": realm, "name": company.name}
                for realm, company in emulator.companies.items()
            ],
            "faults": [dataclasses.asdict(f) for f in emulator.faults],
            "settings": emulator.settings_snapshot(),
            "counters": emulator.counters_snapshot(),
        }
    return JSONResponse(body)


@_handles_bad_input
async def advance_clock(request: Request) -> Response:
    seconds = (await _json_body(request)).get("seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise _BadRequest("seconds must be a number")
    now = emulator_of(request).clock.advance(seconds)
    return JSONResponse({"now": now.isoformat()})


@_handles_bad_input
async def freeze_clock(request: Request) -> Response:
    return JSONResponse({"now": emulator_of(request).clock.freeze().isoformat()})


@_handles_bad_input
async def unfreeze_clock(request: Request) -> Response:
    clock = emulator_of(request).clock
    clock.unfreeze()
    return JSONResponse({"now": clock.now().isoformat()})


@_handles_bad_input
async def faults(request: Request) -> Response:
    emulator = emulator_of(request)
    if request.method == "DELETE":
        emulator.clear_faults()
        return Response(status_code=204)
    body = await _json_body(request)
    allowed = {"endpoint", "kind", "status", "body", "delay", "count"}
    if set(body) - allowed:
        raise _BadRequest(f"unknown fields {sorted(set(body) - allowed)}; known: {sorted(allowed)}")
    fault = emulator.inject_fault(**body)
    return JSONResponse({"fault": dataclasses.asdict(fault)}, status_code=201)


@_handles_bad_input
async def configure(request: Request) -> Response:
    emulator = emulator_of(request)
    emulator.configure(**(await _json_body(request)))
    return JSONResponse({"settings": emulator.settings_snapshot()})


@_handles_bad_input
async def reset(request: Request) -> Response:
    emulator_of(request).reset()
    return JSONResponse({"reset": True})


@_handles_bad_input
async def counters(request: Request) -> Response:
    return JSONResponse(emulator_of(request).counters_snapshot())


@_handles_bad_input
async def companies(request: Request) -> Response:
    body = await _json_body(request)
    realm_id = emulator_of(request).create_company(body.get("realm_id"), body.get("name"))
    return JSONResponse({"realm_id": realm_id}, status_code=201)


@_handles_bad_input
async def disconnect(request: Request) -> Response:
    revoked = emulator_of(request).disconnect(request.path_params["realm_id"])
    return JSONResponse({"revoked_grants": revoked})


@_handles_bad_input
async def tokens(request: Request) -> Response:
    body = await _json_body(request)
    scopes = tuple(body.get("scope", "com.intuit.quickbooks.accounting").split())
    return JSONResponse(emulator_of(request).issue_tokens(body.get("realm_id"), scopes=scopes))


@_handles_bad_input
async def requests(request: Request) -> Response:
    records = emulator_of(request).recent_requests(request.query_params.get("endpoint"))
    return JSONResponse([{**dataclasses.asdict(r), "at": r.at.isoformat()} for r in records])


CONTROL_PREFIX = "/_emulator"

routes = [
    Route(f"{CONTROL_PREFIX}/state", state, methods=["GET"]),
    Route(f"{CONTROL_PREFIX}/clock/advance", advance_clock, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/clock/freeze", freeze_clock, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/clock/unfreeze", unfreeze_clock, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/faults", faults, methods=["POST", "DELETE"]),
    Route(f"{CONTROL_PREFIX}/config", configure, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/reset", reset, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/counters", counters, methods=["GET"]),
    Route(f"{CONTROL_PREFIX}/companies", companies, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/companies/{{realm_id}}/disconnect", disconnect, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/tokens", tokens, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/requests", requests, methods=["GET"]),
]
