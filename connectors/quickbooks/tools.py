"""The MCP tools of the ``quickbooks`` kind.

Every tool runs for one tenant, connector and user (the gateway's ToolContext) with the access
token of that call's upstream connection. Upstream failures become MCP tool errors with a
message a person can act on, never protocol errors.
"""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.conf import settings
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from upstream.access import UpstreamNotConnected, upstream_grant_for, upstream_mark_reauth

from connectors.base import ToolContext, UpstreamUnavailable, tool_context
from connectors.quickbooks import client as qbo
from connectors.quickbooks.provider import endpoints

T = TypeVar("T")
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=True)

# One throttle per process, keyed by company: one tenant cannot exceed Intuit's limits.
THROTTLE = qbo.RealmThrottle()


async def with_company(ctx: Context, call: Callable[[qbo.QuickBooksApi], Awaitable[T]]) -> T:
    """Run ``call`` against this call's company; refresh once on a 401, then give up clearly."""
    context: ToolContext = tool_context(ctx)
    try:
        for attempt in range(2):
            grant = await upstream_grant_for(context, force_refresh=attempt > 0)
            async with qbo.QuickBooksApi(
                api_base=endpoints().api_base,
                realm_id=grant.external_account_id,
                access_token=grant.access_token,
                throttle=THROTTLE,
            ) as api:
                try:
                    return await call(api)
                except qbo.Unauthorized:
                    if attempt == 0:
                        continue  # the token may have been revoked early: refresh once
                    await upstream_mark_reauth(context, "Intuit refused a freshly refreshed token")
                    raise ToolError(
                        "QuickBooks no longer accepts this connection. Reconnect at "
                        f"{settings.PUBLIC_URL}/dashboard/connectors/{context.connector_id}/connect"
                    ) from None
    except UpstreamNotConnected as exc:
        raise ToolError(str(exc)) from None
    except UpstreamUnavailable as exc:
        raise ToolError(str(exc)) from None
    except qbo.Throttled as exc:
        raise ToolError(
            f"QuickBooks is throttling this company; try again in {int(exc.retry_after)} seconds"
        ) from None
    except qbo.StaleObject as exc:
        raise ToolError(
            f"The record changed since it was read ({exc}); read it again and retry with its "
            "current SyncToken"
        ) from None
    except qbo.NotFound as exc:
        raise ToolError(f"Not found in QuickBooks: {exc}") from None
    except (qbo.ValidationError, qbo.InvalidQuery) as exc:
        raise ToolError(f"QuickBooks refused the request: {exc}") from None
    except qbo.Forbidden as exc:
        raise ToolError(f"QuickBooks refused access: {exc}") from None
    except qbo.ProviderUnavailable as exc:
        raise ToolError(f"QuickBooks is unavailable right now ({exc}); try again shortly") from None
    except qbo.QuickBooksError as exc:
        raise ToolError(f"QuickBooks error: {exc}") from None
    raise AssertionError("unreachable")


def build_server() -> MCPServer:
    server = MCPServer(
        "quickbooks",
        instructions=(
            "Tools for one QuickBooks Online company. Use query for anything the specific "
            "tools do not cover; its grammar is Intuit's (SELECT * or count(*), no OR/JOIN)."
        ),
    )

    @server.tool(annotations=READ_ONLY)
    async def company_info(ctx: Context) -> dict[str, Any]:
        """The connected company's name, legal name, address, country and fiscal year start."""
        info = await with_company(ctx, lambda api: api.company_info())
        return {
            key: info.get(key)
            for key in (
                "CompanyName",
                "LegalName",
                "Country",
                "FiscalYearStartMonth",
                "CompanyAddr",
                "Email",
                "Id",
            )
        }

    @server.tool(annotations=READ_ONLY)
    async def query(
        ctx: Context, query: str, start_position: int = 1, max_results: int = 100
    ) -> dict[str, Any]:
        """Run a read-only QuickBooks query, e.g. "SELECT * FROM Customer WHERE
        DisplayName LIKE 'A%'". Grammar: SELECT * | count(*) FROM Entity [WHERE a AND b]
        [ORDERBY field [ASC|DESC]]; operators = < > <= >= IN LIKE ('%' only); no OR or JOIN.
        Pages with start_position (1-based) and max_results (at most 1000)."""
        try:
            qbo.validate_query(query)
        except qbo.QuickBooksError as exc:
            raise ToolError(f"Invalid query: {exc}") from None
        page = await with_company(
            ctx,
            lambda api: api.query(query, start_position=start_position, max_results=max_results),
        )
        result: dict[str, Any] = {"entity": page.entity, "start_position": page.start_position}
        if page.total_count is not None:
            result["total_count"] = page.total_count
        else:
            result["rows"] = page.items
            result["returned"] = len(page.items)
            if len(page.items) == max_results:
                result["next_start_position"] = page.start_position + len(page.items)
        return result

    return server
