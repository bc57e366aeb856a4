"""Exceptions of the QuickBooks client, and the mapping from Intuit's error shapes to them.

Intuit reports errors in four shapes; all of them end up as one of the exceptions below:

    {"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type": ...}}  (even with 200)
    {"fault": {"error": [{"message", "detail", "code"}], "type": ...}}              (401, 403, 429)
    <IntuitResponse><Fault type="AuthenticationFault"><Error code="3200">...        (XML 401)
    {"error": "invalid_grant"}                                                     (OAuth endpoints)

Messages never contain token values; `intuit_tid` is kept for support requests.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import httpx

THROTTLE_WAIT_SECONDS = 60.0


class QuickBooksError(Exception):
    """Base of every error this client raises."""

    def __init__(
        self, message: str, *, status_code: int | None = None, intuit_tid: str | None = None
    ):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.intuit_tid = intuit_tid

    def __str__(self) -> str:
        suffix = f" (intuit_tid={self.intuit_tid})" if self.intuit_tid else ""
        return f"{self.message}{suffix}"


class ProviderUnavailable(QuickBooksError):
    """Intuit could not be reached or answered 5xx; transient, try again later."""


class Throttled(QuickBooksError):
    """429 / code 3001 ThrottleExceeded: wait `retry_after` seconds (Intuit says 60)."""

    def __init__(self, message: str, *, retry_after: float = THROTTLE_WAIT_SECONDS, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class OAuthError(QuickBooksError):
    """The token or revoke endpoint refused the request; `error` is the OAuth error code."""

    def __init__(self, error: str, description: str = "", **kwargs):
        super().__init__(
            f"OAuth error {error}" + (f": {description}" if description else ""), **kwargs
        )
        self.error = error
        self.description = description


class InvalidGrant(OAuthError):
    """The code or refresh token is dead (used, expired, rotated away, or the app disconnected).

    For a refresh token this is permanent: the company must be connected again.
    """


class InvalidClient(OAuthError):
    """The client id or secret was refused."""


class ApiError(QuickBooksError):
    """An Accounting API Fault; `code`, `detail` and `element` come from Intuit's Error entry."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        detail: str = "",
        element: str = "",
        fault_type: str = "",
        **kwargs,
    ):
        super().__init__(message, **kwargs)
        self.code = code
        self.detail = detail
        self.element = element
        self.fault_type = fault_type

    def __str__(self) -> str:
        text = f"{self.code} {self.message}" if self.code else self.message
        if self.detail:
            text += f": {self.detail}"
        if self.element:
            text += f" [element {self.element}]"
        return text + (f" (intuit_tid={self.intuit_tid})" if self.intuit_tid else "")


class Unauthorized(ApiError):
    """401: the access token is missing, expired or revoked; refresh once and retry."""


class Forbidden(ApiError):
    """403: the token may not use this company (e.g. development keys on a production company)."""


class NotFound(ApiError):
    """Code 610: the object does not exist or was made inactive."""


class StaleObject(ApiError):
    """Code 5010: the SyncToken sent is not the current one; read the object again."""


class ValidationError(ApiError):
    """The request was refused as invalid (codes 2000-4999, 6000+, and other 4xx faults)."""


class InvalidQuery(ValidationError):
    """A query refused by the grammar, either here before sending or by Intuit (code 4000)."""


# --- mapping responses to exceptions ----------------------------------------------------------


@dataclass(frozen=True)
class FaultEntry:
    """The first Error of a Fault, whatever shape it came in."""

    code: str | None
    message: str
    detail: str
    element: str
    fault_type: str


def intuit_tid_of(response: httpx.Response) -> str | None:
    return response.headers.get("intuit_tid")


def _json_fault(payload: object) -> FaultEntry | None:
    if not isinstance(payload, dict):
        return None
    fault = payload.get("Fault") or payload.get("fault")
    if not isinstance(fault, dict):
        return None
    errors = fault.get("Error") or fault.get("error") or [{}]
    first = errors[0] if isinstance(errors, list) and errors else {}
    if not isinstance(first, dict):
        first = {}

    def pick(*names: str) -> str:
        return next((str(first[n]) for n in names if first.get(n) is not None), "")

    return FaultEntry(
        code=pick("code") or None,
        message=pick("Message", "message"),
        detail=pick("Detail", "detail"),
        element=pick("element"),
        fault_type=str(fault.get("type", "")),
    )


def _xml_fault(text: str) -> FaultEntry | None:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    fault = next((e for e in root.iter() if local(e.tag) == "Fault"), None)
    if fault is None:
        return None
    error = next((e for e in fault.iter() if local(e.tag) == "Error"), None)
    children = {
        local(child.tag): (child.text or "") for child in (error if error is not None else [])
    }
    return FaultEntry(
        code=error.get("code") if error is not None else None,
        message=children.get("Message", ""),
        detail=children.get("Detail", ""),
        element=error.get("element", "") if error is not None else "",
        fault_type=fault.get("type", ""),
    )


def parse_fault(response: httpx.Response) -> FaultEntry | None:
    """The Fault in a response body, if there is one (JSON either case, or XML)."""
    content_type = response.headers.get("content-type", "")
    text = response.text
    if "xml" in content_type or text.lstrip().startswith("<"):
        return _xml_fault(text)
    try:
        return _json_fault(json.loads(text))
    except ValueError:
        return None


def _code_number(code: str | None) -> int | None:
    try:
        return int(code) if code is not None else None
    except ValueError:
        return None


def api_error_from_response(response: httpx.Response) -> QuickBooksError | None:
    """The exception an Accounting API response stands for, or None when it succeeded."""
    status = response.status_code
    fault = parse_fault(response)
    if status < 300 and fault is None:
        return None
    tid = intuit_tid_of(response)
    common = {"status_code": status, "intuit_tid": tid}
    if fault is None:
        fault = FaultEntry(None, f"HTTP {status} from QuickBooks", "", "", "")
    details = {
        "code": fault.code,
        "detail": fault.detail,
        "element": fault.element,
        "fault_type": fault.fault_type,
        **common,
    }
    message = fault.message or f"HTTP {status} from QuickBooks"
    code = _code_number(fault.code)
    if status == 429 or code == 3001:
        return Throttled(message, **common)
    if status >= 500:
        return ProviderUnavailable(message, **common)
    if status == 401:
        return Unauthorized(message, **details)
    if status == 403:
        return Forbidden(message, **details)
    if code == 5010:
        return StaleObject(message, **details)
    if code == 610:
        return NotFound(message, **details)
    if code == 4000:
        return InvalidQuery(message, **details)
    if fault.code is not None or fault.fault_type == "ValidationFault" or status == 400:
        return ValidationError(message, **details)
    return ApiError(message, **details)


def oauth_error_from_response(response: httpx.Response) -> QuickBooksError | None:
    """The exception a token or revoke endpoint response stands for, or None on success."""
    status = response.status_code
    if status < 300:
        return None
    common = {"status_code": status, "intuit_tid": intuit_tid_of(response)}
    if status == 429:
        return Throttled("the token endpoint is throttling requests", **common)
    if status >= 500:
        return ProviderUnavailable(f"HTTP {status} from the Intuit token service", **common)
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    error = payload.get("error") if isinstance(payload, dict) else None
    description = payload.get("error_description", "") if isinstance(payload, dict) else ""
    if error == "invalid_grant":
        return InvalidGrant(error, description, **common)
    if error == "invalid_client" or status == 401:
        return InvalidClient(error or "invalid_client", description, **common)
    return OAuthError(error or f"http_{status}", description, **common)
