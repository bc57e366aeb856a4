"""The Accounting API subset: company info, query, read, write, reports.

Every call passes the same gate, in Intuit's order: bearer token (401), company of the token
(403), throttling (429), then any injected fault, then the work itself under the state lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..query import QueryError, parse_query
from . import faults
from .company import ENTITY_BY_PATH, ENTITY_SPECS, Company
from .faults import IntuitFault, intuit_time
from .gate import ENDPOINT_SCOPE_KEY, emulator_of, enter_endpoint
from .querying import run_query
from .reports import build_report

# What the emulator stores is what it can query.
QUERYABLE = tuple(ENTITY_SPECS)

Handler = Callable[[Company, Request, bytes, datetime], dict[str, Any]]


async def _serve(request: Request, endpoint: str, handler: Handler, *, write: bool = False):
    emulator = emulator_of(request)
    realm_id = request.path_params["realm_id"]
    request.scope[ENDPOINT_SCOPE_KEY] = endpoint
    scheme, _, token_value = request.headers.get("authorization", "").partition(" ")
    with emulator.lock:
        now = emulator.clock.now()
        emulator.counters["api.requests"] += 1
        emulator.counters[f"api.{endpoint}"] += 1
        if scheme.lower() == "bearer" and token_value:
            outcome = emulator.tokens.authenticate(token_value, now)
        else:
            outcome = "Authorization header missing or not a bearer token"
        if isinstance(outcome, str):
            emulator.counters["api.unauthorized"] += 1
            return faults.authentication_fault(emulator.next_auth_fault_style(), outcome, now)
        if outcome.realm_id != realm_id:
            emulator.counters["api.forbidden"] += 1
            return faults.authorization_fault(now)
        limits = emulator.settings.throttle
        if not emulator.rate_limiter.try_enter(realm_id, now.timestamp(), limits):
            emulator.counters["api.throttled"] += 1
            return faults.throttle_fault(now)
    try:
        if (injected := await enter_endpoint(request, endpoint)) is not None:
            return injected
        body = await request.body()
        request_id = request.query_params.get("requestid") if write else None
        with emulator.lock:
            now = emulator.clock.now()
            if request_id:
                cached = emulator.idempotent_responses.get((realm_id, request_id))
                if cached is not None:
                    emulator.counters["api.requestid_replayed"] += 1
                    return JSONResponse(cached[1], status_code=cached[0])
            try:
                status, payload = 200, handler(emulator.company(realm_id), request, body, now)
            except IntuitFault as fault:
                status, payload = fault.status, fault.body(now)
            if request_id:
                emulator.idempotent_responses[(realm_id, request_id)] = (status, payload)
        return JSONResponse(payload, status_code=status)
    finally:
        with emulator.lock:
            emulator.rate_limiter.leave(realm_id)


def _wrap(name: str, obj: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {name: obj, "time": intuit_time(now)}


def _spec_for_path(entity_path: str, action: str):
    spec = ENTITY_BY_PATH.get(entity_path.lower())
    if spec is None:
        raise faults.unsupported_operation(f"Operation {action} {entity_path} is not supported.")
    return spec


# --- handlers (run under the state lock) ----------------------------------------------------


def _company_info(company: Company, request: Request, body: bytes, now: datetime):
    if request.path_params["company_id"] != company.realm_id:
        raise faults.object_not_found("CompanyInfo", request.path_params["company_id"])
    return _wrap("CompanyInfo", company.company_info(), now)


def _query(company: Company, request: Request, body: bytes, now: datetime):
    text = request.query_params.get("query")
    if text is None and request.method == "POST":
        text = body.decode("utf-8", errors="replace")
    if not text:
        raise faults.query_parser_error("QueryParserError: the query is empty")
    try:
        query = parse_query(text, entities=QUERYABLE)
    except QueryError as error:
        raise faults.query_parser_error(error.detail) from None
    return {"QueryResponse": run_query(query, company.all(query.entity)), "time": intuit_time(now)}


def _read(company: Company, request: Request, body: bytes, now: datetime):
    spec = _spec_for_path(request.path_params["entity"], "GET")
    return _wrap(spec.name, company.get(spec.name, request.path_params["entity_id"]), now)


def _write(company: Company, request: Request, body: bytes, now: datetime):
    spec = _spec_for_path(request.path_params["entity"], "POST")
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise faults.invalid_value("body", "Request body must be a JSON object")
    operation = (request.query_params.get("operation") or "").lower()
    if operation == "delete":
        result = company.delete(spec.name, payload, now)
    elif operation == "void":
        result = company.void(spec.name, payload, now)
    elif operation in ("", "update", "create"):
        if payload.get("Id") not in (None, ""):
            result = company.update(spec.name, payload, now)
        else:
            result = company.create(spec.name, payload, now)
    else:
        raise faults.unsupported_operation(f"Operation {operation} is not supported.")
    return _wrap(spec.name, result, now)


def _report(company: Company, request: Request, body: bytes, now: datetime):
    return build_report(company, request.path_params["report"], request.query_params, now)


# --- routes ---------------------------------------------------------------------------------


async def company_info(request: Request) -> Response:
    return await _serve(request, "companyinfo", _company_info)


async def query(request: Request) -> Response:
    return await _serve(request, "query", _query)


async def read(request: Request) -> Response:
    return await _serve(request, "read", _read)


async def write(request: Request) -> Response:
    return await _serve(request, "write", _write, write=True)


async def report(request: Request) -> Response:
    return await _serve(request, "report", _report)
