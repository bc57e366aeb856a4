"""Intuit's error shapes, and the faults tests can inject into the emulator.

Intuit answers errors in several shapes our client must understand: the Accounting API's
`{"Fault": {"Error": [...], "type": ...}}` (sometimes with HTTP 200), a lowercase JSON `fault`
or an XML `AuthenticationFault` for 401s, and plain OAuth error JSON on the token endpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send


def intuit_time(moment: datetime) -> str:
    """The `time` member of API responses, e.g. 2025-01-15T12:00:00.000+00:00."""
    return moment.isoformat(timespec="milliseconds")


class IntuitFault(Exception):
    """An Accounting API error, rendered as Intuit's `Fault` JSON."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str = "",
        *,
        element: str = "",
        status: int = 400,
        fault_type: str = "ValidationFault",
    ):
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = fault_type

    def body(self, now: datetime) -> dict[str, Any]:
        error = {"Message": self.message, "Detail": self.detail, "code": self.code}
        if self.element:
            error["element"] = self.element
        return {"Fault": {"Error": [error], "type": self.fault_type}, "time": intuit_time(now)}


# The faults the emulator raises, named after what went wrong.


def object_not_found(entity: str, entity_id: str) -> IntuitFault:
    return IntuitFault(
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive or deleted. "
        f"Check {entity} with Id {entity_id}.",
    )


def inactive_reference(element: str) -> IntuitFault:
    return IntuitFault(
        "610",
        "Object Not Found",
        "Object Not Found : Something you're trying to use has been made inactive. "
        "Check the fields with accounts, customers, items, vendors or employees.",
        element=element,
    )


def stale_object() -> IntuitFault:
    return IntuitFault(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and another user were working on the same thing. The other "
        "user finished before you did, so your work was not saved.",
    )


def required_param_missing(element: str) -> IntuitFault:
    return IntuitFault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element=element,
    )


def invalid_reference(element: str, value: object) -> IntuitFault:
    return IntuitFault(
        "2500",
        "Invalid Reference Id",
        f"Invalid Reference Id : {element} assigned is not found: {value}",
        element=element,
    )


def unsupported_property(name: str) -> IntuitFault:
    return IntuitFault(
        "2010",
        "Request has invalid or unsupported property",
        f"Property Name:{name} specified is unsupported or invalid",
        element=name,
    )


def invalid_value(element: str, detail: str) -> IntuitFault:
    return IntuitFault(
        "2010", "Request has invalid or unsupported property", detail, element=element
    )


def duplicate_name(name: str) -> IntuitFault:
    return IntuitFault(
        "6240",
        "Duplicate Name Exists Error",
        f"The name supplied already exists. : {name}",
    )


def business_validation(detail: str) -> IntuitFault:
    return IntuitFault(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
    )


def unsupported_operation(detail: str) -> IntuitFault:
    return IntuitFault("500", "Unsupported Operation", detail)


def query_parser_error(detail: str) -> IntuitFault:
    return IntuitFault("4000", "Error parsing query", detail)


# Authentication, authorization and throttling faults, each in the shape Intuit uses for it.

AUTH_FAULT_STYLES = ("json", "xml", "alternate")


def authentication_fault(style: str, detail: str, now: datetime) -> Response:
    """401 for a missing, expired or revoked bearer token, as JSON (`fault`) or XML."""
    message = "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    headers = {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'}
    if style == "xml":
        body = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" '
            f'time="{intuit_time(now)}">'
            '<Fault type="AuthenticationFault"><Error code="3200">'
            f"<Message>{escape(message)}</Message><Detail>{escape(detail)}</Detail>"
            "</Error></Fault></IntuitResponse>"
        )
        return Response(body, status_code=401, media_type="application/xml", headers=headers)
    body_json = {
        "fault": {
            "error": [{"message": message, "detail": detail, "code": "3200"}],
            "type": "AUTHENTICATION",
        },
        "time": intuit_time(now),
    }
    return JSONResponse(body_json, status_code=401, headers=headers)


def authorization_fault(now: datetime) -> JSONResponse:
    """403 when the token belongs to another company (Intuit's ApplicationAuthorizationFailed)."""
    return JSONResponse(
        {
            "fault": {
                "error": [
                    {
                        "message": "message=ApplicationAuthorizationFailed; errorCode=003100; "
                        "statusCode=403",
                        "detail": "The token is not authorized for this company.",
                        "code": "3100",
                    }
                ],
                "type": "AUTHORIZATION",
            },
            "time": intuit_time(now),
        },
        status_code=403,
    )


def throttle_fault(now: datetime) -> JSONResponse:
    """429 ThrottleExceeded; Intuit sends no Retry-After, clients wait 60 seconds."""
    fault = IntuitFault(
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.",
        status=429,
        fault_type="ThrottleExceeded",
    )
    return JSONResponse(fault.body(now), status_code=429)


# Injected faults.

FAULT_KINDS = ("error", "slow", "drop", "drop_after", "fault_200")

# Endpoint names a fault can target; "*" targets every one of them.
ENDPOINT_NAMES = (
    "discovery",
    "authorize",
    "token",
    "revoke",
    "userinfo",
    "companyinfo",
    "query",
    "read",
    "write",
    "report",
)


@dataclass
class InjectedFault:
    """The next `remaining` requests to `endpoint` misbehave (None: until cleared).

    kinds:
        error      answer `status` with `body` (default: an Intuit-like 5xx body)
        slow       wait `delay` seconds, then answer normally
        drop       send the status line and headers, then close the connection mid-body
        drop_after do the work (state changes happen), then drop the response the same way:
                   the client cannot tell whether its request took effect
        fault_200  answer HTTP 200 with a ValidationFault body, as Intuit sometimes does
    """

    endpoint: str = "*"
    kind: str = "error"
    status: int = 500
    body: Any = None
    delay: float = 0.0
    remaining: int | None = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}")
        if self.endpoint != "*" and self.endpoint not in ENDPOINT_NAMES:
            raise ValueError(f"endpoint must be '*' or one of {ENDPOINT_NAMES}")
        if self.remaining is not None and self.remaining < 1:
            raise ValueError("remaining must be at least 1 (or None for 'until cleared')")

    def matches(self, endpoint: str) -> bool:
        return self.endpoint in ("*", endpoint)

    def response(self, now: datetime) -> Response:
        """The response an `error` or `fault_200` fault answers with."""
        if self.kind == "fault_200":
            body = self.body or business_validation("Injected fault.").body(now)
            return JSONResponse(body, status_code=200)
        if self.body is None:
            fault = IntuitFault(
                "10000" if self.status == 500 else str(self.status),
                "An application error has occurred while processing your request",
                "System Failure Error: injected fault",
                status=self.status,
                fault_type="SystemFault",
            )
            return JSONResponse(fault.body(now), status_code=self.status)
        if isinstance(self.body, str):
            return Response(self.body, status_code=self.status, media_type="text/plain")
        return Response(
            json.dumps(self.body), status_code=self.status, media_type="application/json"
        )


class DroppedConnection(Response):
    """Starts a response promising a body, then returns without sending it.

    The server (uvicorn) then closes the connection, so the client sees a connection dropped
    mid-response, the way a failing load balancer looks from outside.
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")],
            }
        )
