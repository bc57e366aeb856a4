"""Tool policies: per connector, tools turned off and tools only the tenant's admins may call;
applied by the gateway to every kind (a fixed tool list, a per-request tool source) on top of
the write gate."""

import time

import anyio
import pytest

from events.audit import audit_buffer
from events.models import AuditRecord
from tenants.services import connector_create, connector_update
from tests.support.mcp_client import connected, oauth_provider
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)


def _as(url: str, who: str, scenario):
    """Run ``scenario(client)`` with the official SDK client signed in as ``who``."""

    async def run():
        provider = oauth_provider(url, Browser(who, f"{who}-pass-123"))
        async with connected(url, provider) as client:
            return await scenario(client)

    return anyio.run(run)


async def _names(client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


def test_members_see_and_call_only_what_the_policy_allows_them(live_url, acme):
    connector = acme["connector"]
    connector_update(connector=connector, tool_policy={"off": ["fail"], "admins_only": ["whoami"]})

    async def member(client):
        names = await _names(client)
        refused_whoami = await client.call_tool("whoami", {})
        refused_fail = await client.call_tool("fail", {"message": "x"})
        echoed = await client.call_tool("echo", {"text": "still here"})
        return names, refused_whoami, refused_fail, echoed

    names, whoami, fail, echoed = _as(connector.url, "bob", member)
    assert names == {"echo"}
    assert whoami.is_error
    assert whoami.content[0].text == (
        "whoami may only be called by the tenant's admins on this connector"
    )
    assert fail.is_error
    assert fail.content[0].text == "fail is turned off on this connector by its admins"
    assert echoed.content[0].text == "still here"

    async def admin(client):
        return await _names(client), await client.call_tool("whoami", {})

    names, whoami = _as(connector.url, "alice", admin)
    assert names == {"echo", "whoami"}
    assert not whoami.is_error and whoami.structured_content["user"] == "alice"

    deadline = time.monotonic() + 10
    while audit_buffer.pending() < 4:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    audit_buffer.flush()
    refused = AuditRecord.objects.filter(outcome="denied").order_by("id")
    assert [(r.username, r.tool) for r in refused] == [("bob", "whoami"), ("bob", "fail")]
    assert refused[0].error.startswith("whoami may only be called")
    assert AuditRecord.objects.filter(username="alice", tool="whoami", outcome="ok").count() == 1


def test_the_policy_filters_a_tool_list_known_only_per_request(live_url, acme):
    catalog = connector_create(
        tenant=acme["tenant"],
        kind="catalog",
        slug="catalog",
        settings={"tools": "alpha,beta,gamma"},
    )
    connector_update(connector=catalog, tool_policy={"off": ["alpha"], "admins_only": ["gamma"]})

    async def scenario(client):
        return await _names(client), await client.call_tool("alpha", {"n": 1})

    names, alpha = _as(catalog.url, "bob", scenario)
    assert names == {"beta"}
    assert alpha.is_error and "turned off" in alpha.content[0].text
    names, gamma = _as(
        catalog.url, "alice", lambda c: _pair(_names(c), c.call_tool("gamma", {"n": 2}))
    )
    assert names == {"beta", "gamma"}
    assert gamma.content[0].text == "gamma(2) for alice on catalog"


async def _pair(first, second):
    return await first, await second


def test_a_bad_policy_is_refused_with_the_reason(acme):
    from tenants.services import TenantError

    with pytest.raises(TenantError, match="tool_policy.off"):
        connector_update(connector=acme["connector"], tool_policy={"off": "fail"})
    with pytest.raises(TenantError, match="unknown key"):
        connector_update(connector=acme["connector"], tool_policy={"deny": ["fail"]})
    connector_update(
        connector=acme["connector"],
        tool_policy={"off": [" fail ", "fail"], "admins_only": ["fail"]},
    )
    assert acme["connector"].tool_policy == {"off": ["fail"], "admins_only": []}
