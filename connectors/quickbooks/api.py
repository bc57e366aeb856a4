"""QuickBooks Online Accounting API client (async), bound to one company and access token.

Every request sends `minorversion=75` and `Accept: application/json`; every write carries a
`requestid`, so sending it again (after a timeout or a dropped connection) cannot create a second
object: Intuit answers a repeated requestid with the first response. Reads and such writes are
retried on network errors and 5xx; nothing else is.

    async with QuickBooksApi(api_base=endpoints.api_base, realm_id=realm, access_token=at) as qb:
        customers = await qb.query_all("SELECT * FROM Customer WHERE Active = true")

A 401 raises `Unauthorized`: refresh the token (under the platform's lock) and retry once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from .errors import ApiError, InvalidQuery, ProviderUnavailable, api_error_from_response
from .query import MAX_RESULTS_LIMIT, Query, QueryError, canonical_entity_name, parse_query
from .throttle import RealmThrottle, SharedRealmThrottle
from .transport import USER_AGENT, RetryPolicy, make_async_client, unavailable

MINOR_VERSION = 75
DEFAULT_RETRY = RetryPolicy()
REQUEST_ID_MAX_LENGTH = 50


def validate_query(sql: str) -> Query:
    """Parse a query and refuse anything Intuit would refuse, or that is not a read.

    Raises `InvalidQuery` (a `ValidationError`) with Intuit-style detail; returns the parsed query.
    """
    try:
        return parse_query(sql)
    except QueryError as error:
        raise InvalidQuery("Error parsing query", code="4000", detail=error.detail) from None


def new_request_id() -> str:
    """A fresh idempotency key for one logical write (32 hex characters)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class QueryPage:
    """One page of a query: `items` of `entity`, or only `total_count` for count(*)."""

    entity: str
    items: list[dict[str, Any]]
    start_position: int
    max_results: int  # as Intuit reports it: how many items this page holds
    total_count: int | None = None


class QuickBooksApi:
    """Accounting API calls for one company (`realm_id`) with one access token."""

    def __init__(
        self,
        *,
        api_base: str,
        realm_id: str,
        access_token: str,
        http: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | None = None,
        throttle: RealmThrottle | SharedRealmThrottle | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        minor_version: int = MINOR_VERSION,
    ):
        self.api_base = api_base.rstrip("/")
        self.realm_id = realm_id
        self._access_token = access_token
        self._owns_http = http is None
        self._http = http or make_async_client(timeout=timeout)
        # A shared client (the platform's pool) gets our timeouts on each request instead.
        self._timeout = timeout if timeout is not None and http is not None else None
        self._throttle = throttle
        self._retry = retry
        self._minor_version = minor_version

    def __repr__(self) -> str:
        return f"QuickBooksApi(api_base={self.api_base!r}, realm_id={self.realm_id!r})"

    async def __aenter__(self) -> QuickBooksApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    # --- transport ----------------------------------------------------------------------------

    def _url(self, *parts: str) -> str:
        path = "/".join(quote(part, safe="") for part in parts)
        return f"{self.api_base}/company/{quote(self.realm_id, safe='')}/{path}"

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """Send with retries (every request this class makes is safe to repeat), map faults."""
        params = {**(params or {}), "minorversion": self._minor_version}
        headers = {
            "Authorization": f"Bearer {self._access_token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        timeout = self._timeout or httpx.USE_CLIENT_DEFAULT
        attempt = 0
        while True:
            attempt += 1
            if self._throttle is not None:
                await self._throttle.acquire(self.realm_id)
            try:
                response = await self._http.request(
                    method, url, params=params, json=json, headers=headers, timeout=timeout
                )
            except httpx.HTTPError as error:
                failure: Exception = unavailable(error, "QuickBooks API")
                failure.__cause__ = error
            else:
                error_from_response = api_error_from_response(response)
                if error_from_response is None:
                    return self._json(response)
                failure = error_from_response
                transient_status = response.status_code in self._retry.retry_statuses
                if not transient_status:
                    raise failure
            if attempt >= self._retry.max_attempts:
                raise failure
            await anyio.sleep(self._retry.delay(attempt))

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            raise ProviderUnavailable(
                "QuickBooks answered with a body that is not JSON",
                status_code=response.status_code,
                intuit_tid=response.headers.get("intuit_tid"),
            ) from None
        if not isinstance(payload, dict):
            raise ApiError("QuickBooks answered with unexpected JSON", status_code=200)
        return payload

    async def _write(
        self, entity: str, body: dict[str, Any], request_id: str | None, operation: str | None
    ) -> dict[str, Any]:
        name = canonical_entity_name(entity)
        request_id = request_id or new_request_id()
        if len(request_id) > REQUEST_ID_MAX_LENGTH:
            raise ValueError(f"request_id is limited to {REQUEST_ID_MAX_LENGTH} characters")
        params = {"requestid": request_id}
        if operation:
            params["operation"] = operation
        payload = await self._request("POST", self._url(name.lower()), params=params, json=body)
        return payload[name]

    # --- reads --------------------------------------------------------------------------------

    async def company_info(self) -> dict[str, Any]:
        """The CompanyInfo object (name, address, fiscal year start, ...)."""
        payload = await self._request("GET", self._url("companyinfo", self.realm_id))
        return payload["CompanyInfo"]

    async def get(self, entity: str, entity_id: str) -> dict[str, Any]:
        """One object by Id (`NotFound` if there is none)."""
        name = canonical_entity_name(entity)
        payload = await self._request("GET", self._url(name.lower(), str(entity_id)))
        return payload[name]

    async def query(
        self, sql: str, *, start_position: int | None = None, max_results: int | None = None
    ) -> QueryPage:
        """Run one query (validated here first). Paging arguments override the query's own."""
        parsed = validate_query(sql)
        if start_position is not None or max_results is not None:
            parsed = parsed.with_page(
                start_position or parsed.start_position or 1,
                max_results or parsed.max_results or 100,
            )
            validate_query(parsed.to_sql())  # the limits apply to the arguments too
        payload = await self._request("GET", self._url("query"), params={"query": parsed.to_sql()})
        response = payload.get("QueryResponse") or {}
        if parsed.count:
            return QueryPage(parsed.entity, [], 1, 0, int(response.get("totalCount", 0)))
        items = response.get(parsed.entity, [])
        return QueryPage(
            entity=parsed.entity,
            items=items,
            start_position=int(response.get("startPosition", parsed.start_position or 1)),
            max_results=int(response.get("maxResults", len(items))),
        )

    async def query_pages(
        self, sql: str, *, page_size: int = MAX_RESULTS_LIMIT
    ) -> AsyncIterator[QueryPage]:
        """Every page of a query without STARTPOSITION/MAXRESULTS of its own, in order."""
        parsed = validate_query(sql)
        if parsed.start_position is not None or parsed.max_results is not None:
            raise ValueError("query_pages pages by itself: leave out STARTPOSITION and MAXRESULTS")
        if parsed.count:
            raise ValueError("count(*) queries have no pages; use query()")
        start = 1
        while True:
            page = await self.query(sql, start_position=start, max_results=page_size)
            if page.items:
                yield page
            if len(page.items) < page_size:
                return
            start += page_size

    async def query_all(
        self, sql: str, *, page_size: int = MAX_RESULTS_LIMIT, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """All rows of a query, following pages; stop after `limit` rows if given."""
        rows: list[dict[str, Any]] = []
        async for page in self.query_pages(sql, page_size=page_size):
            rows.extend(page.items)
            if limit is not None and len(rows) >= limit:
                return rows[:limit]
        return rows

    async def count(self, entity: str, where: str = "") -> int:
        """`SELECT count(*) FROM entity [WHERE ...]`."""
        sql = f"SELECT count(*) FROM {canonical_entity_name(entity)}"
        if where:
            sql += f" WHERE {where}"
        page = await self.query(sql)
        return page.total_count or 0

    async def report(self, name: str, **params: str) -> dict[str, Any]:
        """A report (ProfitAndLoss, BalanceSheet, ...) with Intuit's parameters, e.g.
        `start_date="2025-01-01", end_date="2025-03-31", accounting_method="Cash"`."""
        return await self._request("GET", self._url("reports", name), params=params)

    # --- writes -------------------------------------------------------------------------------

    async def create(
        self, entity: str, body: dict[str, Any], *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Create an object; `request_id` (generated when omitted) makes a retry harmless."""
        if body.get("Id"):
            raise ValueError("create() takes a body without Id; use sparse_update() to change")
        return await self._write(entity, body, request_id, None)

    async def sparse_update(
        self, entity: str, body: dict[str, Any], *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Change only the fields sent; `body` needs `Id` and the current `SyncToken`."""
        if not body.get("Id") or body.get("SyncToken") in (None, ""):
            raise ValueError("sparse_update() needs Id and SyncToken in the body")
        return await self._write(entity, {**body, "sparse": True}, request_id, None)

    async def delete(
        self, entity: str, entity_id: str, sync_token: str, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Delete a transaction (name-list objects are made inactive instead)."""
        body = {"Id": str(entity_id), "SyncToken": str(sync_token)}
        return await self._write(entity, body, request_id, "delete")

    async def void(
        self, entity: str, entity_id: str, sync_token: str, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Void a transaction: amounts become zero, the record stays."""
        body = {"Id": str(entity_id), "SyncToken": str(sync_token)}
        return await self._write(entity, body, request_id, "void")
