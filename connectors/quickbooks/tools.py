"""The MCP tools of the ``quickbooks`` kind.

Every tool runs for one tenant, connector and user (the gateway's ToolContext) with the access
token of that call's upstream connection. Upstream failures become MCP tool errors with a
message a person can act on, never protocol errors.

The tools live in tools_status, tools_read (records, lists, queries), tools_reports and
tools_write (listed and callable only where the connector allows writes, see
connectors.write_gate); this module holds what they share and builds the server.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from connectors.base import (
    Cause,
    SlotLimiter,
    ToolContext,
    UpstreamNotConnected,
    UpstreamUnavailable,
    tool_context,
)
from connectors.quickbooks import client as qbo
from connectors.quickbooks import env
from connectors.quickbooks.provider import api_base
from connectors.write_gate import WriteGatedServer

T = TypeVar("T")
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=True)
# A create adds a record and changes nothing else; sending it again adds another one (unless
# the same request_id is sent), so it is not idempotent.
CREATES = ToolAnnotations(
    readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True
)
# An update overwrites fields; its SyncToken makes a repeat fail instead of applying twice.
UPDATES = ToolAnnotations(
    readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=True
)


@functools.cache
def _throttle(per_second: int, per_minute: int) -> qbo.RealmThrottle:
    return qbo.RealmThrottle(per_second=per_second, per_minute=per_minute)


def throttle(limiter: SlotLimiter | None) -> qbo.RealmThrottle | qbo.SharedRealmThrottle:
    """Intuit's limits per company, counted in the platform's shared limiter (Redis) when there
    is one, else in this process: one tenant cannot exceed them, however many replicas serve it."""
    limits = _throttle(env.THROTTLE_PER_SECOND.value(), env.THROTTLE_PER_MINUTE.value())
    return limits.shared(limiter)


async def with_company(ctx: Context, call: Callable[[qbo.QuickBooksApi], Awaitable[T]]) -> T:
    """Run ``call`` against this call's company; refresh once on a 401, then give up clearly."""
    context: ToolContext = tool_context(ctx)
    upstream = context.upstream
    try:
        for attempt in range(2):
            access = await upstream.access(force_refresh=attempt > 0)
            api = qbo.QuickBooksApi(
                api_base=api_base(),
                realm_id=access.account_id,
                access_token=access.access_token,
                http=context.http,
                throttle=throttle(context.limiter),
                timeout=httpx.Timeout(env.TIMEOUT_SECONDS.value(), connect=5.0),
            )
            try:
                return await call(api)
            except qbo.Unauthorized:
                if attempt == 0:
                    continue  # the token may have been revoked early: refresh once
                await upstream.mark_reauth("Intuit refused a freshly refreshed token")
                context.blame(Cause.CONNECTION)
                raise ToolError(
                    f"QuickBooks no longer accepts this connection. Reconnect at "
                    f"{upstream.reconnect_url}"
                ) from None
    except UpstreamNotConnected as exc:
        context.blame(Cause.CONNECTION)
        raise ToolError(str(exc)) from None
    except UpstreamUnavailable as exc:
        context.blame(Cause.UPSTREAM, f"the Intuit token service: {exc}")
        raise ToolError(str(exc)) from None
    except qbo.Throttled as exc:
        context.blame(Cause.UPSTREAM, _from_quickbooks(exc))
        raise ToolError(
            f"QuickBooks is throttling this company; try again in {int(exc.retry_after)} seconds"
        ) from None
    except qbo.StaleObject as exc:
        context.blame(Cause.INPUT)
        raise ToolError(
            f"The record changed since its SyncToken was read ({exc}). Read it again with "
            "get_record and retry with the SyncToken it returns now"
        ) from None
    except qbo.NotFound as exc:
        context.blame(Cause.INPUT)
        raise ToolError(f"Not found in QuickBooks: {exc}") from None
    except (qbo.ValidationError, qbo.InvalidQuery) as exc:
        context.blame(Cause.INPUT)
        raise ToolError(f"QuickBooks refused the request: {exc}") from None
    except qbo.Forbidden as exc:
        context.blame(Cause.UPSTREAM, _from_quickbooks(exc))
        raise ToolError(f"QuickBooks refused access: {exc}") from None
    except qbo.ProviderUnavailable as exc:
        context.blame(Cause.UPSTREAM, _from_quickbooks(exc))
        raise ToolError(f"QuickBooks is unavailable right now ({exc}); try again shortly") from None
    except qbo.QuickBooksError as exc:
        context.blame(Cause.UPSTREAM, _from_quickbooks(exc))
        raise ToolError(f"QuickBooks error: {exc}") from None
    raise AssertionError("unreachable")


def _from_quickbooks(exc: qbo.QuickBooksError) -> str:
    """What the connector's health says of an upstream failure: "502 from QuickBooks"."""
    if exc.status_code:
        return f"{exc.status_code} from QuickBooks"
    return f"QuickBooks: {exc.message}"[:200]


def next_start(start_position: int, returned: int, max_results: int) -> int | None:
    """Where the next page starts, or None when this page was the last one."""
    return start_position + returned if returned == max_results else None


INSTRUCTIONS = (
    "Tools for one QuickBooks Online company. Find ids with find_customers, find_vendors, "
    "list_invoices, list_bills and chart_of_accounts; get_record returns a whole record with "
    "its SyncToken; query covers anything else (Intuit's grammar: SELECT * or count(*), "
    "no OR or JOIN). Reports come back as rows flattened with their section path. Dates are "
    "YYYY-MM-DD. Write tools are listed only when the connector allows writes. When a tool "
    "says the connection must be reconnected, call connection_status and give the user its "
    "reconnect_url."
)


def build_server() -> MCPServer:
    # Imported here because the tool modules import with_company and friends from this one.
    from connectors.quickbooks import tools_read, tools_reports, tools_status, tools_write

    server = WriteGatedServer("quickbooks", instructions=INSTRUCTIONS)
    tools_status.register(server)
    tools_read.register(server)
    tools_reports.register(server)
    tools_write.register(server)
    return server
