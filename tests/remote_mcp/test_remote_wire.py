"""The upstream MCP client against real SDK servers: generations, sessions, failures."""

import httpx
import pytest

from connectors.remote_mcp.wire import (
    Era,
    Sessions,
    UpstreamAuthRejected,
    UpstreamClient,
    UpstreamFailure,
    UpstreamRPCError,
)
from tests.support.live import free_port
from tests.support.upstreams import PIXEL, start_upstream

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def legacy():
    upstream = start_upstream("open", legacy_only=True)
    yield upstream
    upstream.stop()


@pytest.fixture
def modern():
    upstream = start_upstream("open", stateless=True)
    yield upstream
    upstream.stop()


async def test_modern_upstream_gets_stateless_requests(modern, http):
    client = UpstreamClient(modern.url, http=http, sessions=Sessions())
    tools = await client.request("tools/list")
    assert "whoami" in [t["name"] for t in tools["tools"]]
    await client.request("tools/call", {"name": "whoami", "arguments": {}})
    assert [r["session"] for r in modern.mcp_requests] == [None, None, None]
    assert len(modern.mcp_requests) == 3  # discover, list, call: no initialize
    assert "stateless" in client.steps[0]


async def test_legacy_upstream_keeps_one_session(legacy, http):
    sessions = Sessions()
    client = UpstreamClient(legacy.url, http=http, sessions=sessions, key="conn-1")
    await client.request("tools/list")
    again = UpstreamClient(legacy.url, http=http, sessions=sessions, key="conn-1")
    result = await again.request("tools/call", {"name": "whoami", "arguments": {}})
    assert result["content"][0]["text"] == "anonymous"
    used = [r["session"] for r in legacy.mcp_requests]
    # discover refused, initialize, initialized, list, call: the last three on one session
    assert used[0] is None and used[1] is None
    assert used[2] and used[2] == used[3] == used[4]
    assert len(used) == 5


async def test_session_lost_upstream_reinitializes_once(legacy, http):
    sessions = Sessions()
    client = UpstreamClient(legacy.url, http=http, sessions=sessions, key="k")
    await client.request("tools/list")
    first = legacy.mcp_requests[-1]["session"]
    # The upstream restarts and forgets its sessions: the kept id now answers 404.
    sessions.put(client.key, Era("2025-11-25", "forgotten-id"))
    result = await client.request("tools/call", {"name": "whoami", "arguments": {}})
    assert result["content"][0]["text"] == "anonymous"
    assert "expired (404)" in client.steps[-2]
    assert legacy.mcp_requests[-1]["session"] not in (None, first, "forgotten-id")


async def test_results_come_back_untouched(modern, http):
    client = UpstreamClient(modern.url, http=http, sessions=Sessions())
    result = await client.request("tools/call", {"name": "rich", "arguments": {}})
    assert [c["type"] for c in result["content"]] == ["text", "image", "resource"]
    assert result["content"][1] == {"type": "image", "data": PIXEL, "mimeType": "image/png"}
    assert result["structuredContent"] == {"count": 3, "caller": "anonymous"}
    failed = await client.request("tools/call", {"name": "fail", "arguments": {"message": "no"}})
    assert failed["isError"] is True and failed["content"][0]["text"].endswith("fail: no")


async def test_resources_and_prompts_pass(legacy, http):
    client = UpstreamClient(legacy.url, http=http, sessions=Sessions())
    listed = await client.request("resources/list")
    assert listed["resources"][0]["uri"] == "notes://readme"
    read = await client.request("resources/read", {"uri": "notes://readme"})
    assert read["contents"][0]["text"] == "The notes server keeps notes."
    prompt = await client.request("prompts/get", {"name": "summarize", "arguments": {"topic": "x"}})
    assert "notes about x" in prompt["messages"][0]["content"]["text"]


async def test_unknown_tool_is_the_upstreams_json_rpc_error(modern, http):
    client = UpstreamClient(modern.url, http=http, sessions=Sessions())
    with pytest.raises((UpstreamRPCError,)) as caught:
        await client.request("nope/nothing", {})
    assert caught.value.error["code"] == -32601


async def test_list_changed_on_the_response_stream_is_seen(legacy, http):
    seen = []
    client = UpstreamClient(legacy.url, http=http, sessions=Sessions(), on_notification=seen.append)
    await client.request("tools/call", {"name": "unlock_extra", "arguments": {}})
    assert "notifications/tools/list_changed" in [n["method"] for n in seen]


async def test_refused_connection_says_where(http):
    url = f"http://127.0.0.1:{free_port()}/mcp"
    client = UpstreamClient(url, http=http, sessions=Sessions())
    with pytest.raises(UpstreamFailure, match="could not be reached: connection refused") as caught:
        await client.request("tools/list")
    assert url in str(caught.value)


async def test_slow_upstream_is_cut_off(modern, http):
    client = UpstreamClient(modern.url, http=http, sessions=Sessions(), timeout=0.5)
    await client.request("tools/list")
    with pytest.raises(UpstreamFailure, match=r"did not answer within 0.5 s; the call was cut off"):
        await client.request("tools/call", {"name": "slow", "arguments": {"seconds": 5}})


async def test_5xx_and_rejected_credentials(modern, http):
    client = UpstreamClient(modern.url, http=http, sessions=Sessions())
    modern.fail_with = 502
    with pytest.raises(UpstreamFailure, match=r"answered HTTP 502") as caught:
        await client.request("tools/list")
    assert modern.url in str(caught.value)
    modern.fail_with = None
    keyed = start_upstream("api_key", api_keys={"k1": "alice"})
    try:
        bad = UpstreamClient(keyed.url, http=http, sessions=Sessions(), headers={"X-API-Key": "x"})
        with pytest.raises(UpstreamAuthRejected, match="refused the credential"):
            await bad.request("tools/list")
        good = UpstreamClient(
            keyed.url, http=http, sessions=Sessions(), headers={"X-API-Key": "k1"}
        )
        result = await good.request("tools/call", {"name": "whoami", "arguments": {}})
        assert result["content"][0]["text"] == "alice"
    finally:
        keyed.stop()
