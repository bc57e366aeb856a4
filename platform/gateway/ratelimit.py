"""The gateway's rate limits: MCP requests per window per tenant, OAuth client and member.

Counted in config.limits (Redis when configured, so every web process shares one count) with one
round trip per request, and none when no limit is set. Past a limit the request is answered 429
with ``Retry-After`` and a JSON-RPC error body, and never reaches the tools.
"""

import math

from django.conf import settings

from config.limits import alimits_take
from events.models import Event
from events.services import aevent_record
from gateway.answers import rpc_error
from gateway.bearer import BearerCheck

# JSON-RPC's implementation-defined server error range; the HTTP status says the rest.
RATE_LIMITED = -32029


async def rate_limit_refusal(check: BearerCheck):
    """(429, JSON-RPC error body, headers) when this authenticated request is over a limit,
    else None (and the request is counted against each limit)."""
    window = settings.GATEWAY_RATE_LIMIT_WINDOW
    limits = [
        ("tenant", f"gw:tenant:{check.tenant_id}", settings.GATEWAY_RATE_LIMIT_PER_TENANT),
        ("client", f"gw:client:{check.token_client_id}", settings.GATEWAY_RATE_LIMIT_PER_CLIENT),
        (
            "member",
            f"gw:member:{check.tenant_id}:{check.token_user_id}",
            settings.GATEWAY_RATE_LIMIT_PER_MEMBER,
        ),
    ]
    limits = [(what, name, limit) for what, name, limit in limits if limit > 0]
    if not limits:
        return None
    refusal = await alimits_take([(name, limit, window) for _, name, limit in limits])
    if refusal is None:
        return None
    index, wait = refusal
    what, _, limit = limits[index]
    retry_after = max(1, math.ceil(wait))
    message = (
        f"Rate limit reached: {limit} requests per {window} s for this {what}; "
        f"retry in {retry_after} s"
    )
    body = rpc_error(
        message, RATE_LIMITED, id=None, data={"limit": what, "retry_after": retry_after}
    )
    return 429, body, [("retry-after", str(retry_after))]


async def rate_limited_record(check: BearerCheck, *, ip: str | None, user_agent: str) -> None:
    """Trace a refusal in the connector's events (the first few per window and address: a
    client hammering past its limit must not turn every refusal into a database write)."""
    await aevent_record(
        kind="mcp.rate_limited",
        outcome=Event.Outcome.DENIED,
        tenant_id=check.tenant_id,
        connector_id=check.connector_id,
        client_id=check.token_client_id or "",
        user_id=check.token_user_id,
        status_code=429,
        ip=ip,
        user_agent=user_agent,
        anonymous=True,
    )
