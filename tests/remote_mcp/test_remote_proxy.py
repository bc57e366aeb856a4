"""The remote_mcp server on its own (no platform): forwarding, allow-list, caching, failures.

The server is served over real HTTP with the ToolContext a gateway would set; SDK clients
of both generations talk to it, and it talks to real upstream servers.
"""

from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ElicitResult, InputRequiredResult

from connectors.base import SCOPE_KEY, ToolContext, UpstreamNotConnected
from connectors.remote_mcp.lists import ListCache
from connectors.remote_mcp.proxy import RemoteMCPServer
from connectors.remote_mcp.relay import ParkedCalls
from connectors.remote_mcp.wire import Sessions
from tests.support.live import LiveServer, free_port
from tests.support.upstreams import PIXEL, start_upstream

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class FakeAccess:
    access_token: str
    account_id: str = ""


@dataclass
class FakeHandle:
    """What the platform's UpstreamHandle gives: a token per member, refresh, mark_reauth."""

    tokens: list[str]
    reconnect_url: str = "https://platform.example/dashboard/connectors/7/connect"
    reauth: list[str] = field(default_factory=list)
    forced: int = 0

    async def access(self, *, force_refresh: bool = False):
        if self.reauth:
            raise UpstreamNotConnected(f"reconnect at {self.reconnect_url}")
        if force_refresh:
            self.forced += 1
            self.tokens.pop(0)
        return FakeAccess(self.tokens[0])

    async def mark_reauth(self, reason: str) -> None:
        self.reauth.append(reason)


class Front:
    """The proxy served on loopback; ``context`` is what the next request runs with."""

    def __init__(self, upstream_url: str, **settings):
        # Its own caches and parked calls, as another web process has.
        self.server = RemoteMCPServer(lists=ListCache(), sessions=Sessions(), parked=ParkedCalls())
        app = self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.context = ToolContext(
            tenant_id=1,
            tenant_slug="acme",
            connector_id=7,
            connector_slug="notes",
            connector_settings={"upstream_url": upstream_url, **settings},
            connector_mode="per_user",
            user_id=1,
            username="ann",
            client_id="c",
            token_id=1,
        )
        self.http: httpx.AsyncClient | None = None

        async def asgi(scope, receive, send):
            if scope["type"] == "http":
                if self.http is None:
                    self.http = httpx.AsyncClient()
                scope = {**scope, SCOPE_KEY: replace(self.context, http=self.http)}
            await app(scope, receive, send)

        self.live = LiveServer()
        self.live.start(asgi, lifespan="on")
        self.url = f"{self.live.url}/mcp"

    def set(self, **changes):
        self.context = replace(self.context, **changes)

    def settings(self, **changes):
        self.context = replace(
            self.context, connector_settings={**self.context.connector_settings, **changes}
        )

    @asynccontextmanager
    async def client(self, mode="auto", **options):
        async with httpx2.AsyncClient(timeout=30) as http:
            transport = streamable_http_client(self.url, http_client=http)
            async with Client(transport, mode=mode, **options) as client:
                yield client


@pytest.fixture
def open_upstream():
    upstream = start_upstream("open", legacy_only=True)
    yield upstream
    upstream.stop()


@pytest.fixture
def front(open_upstream):
    front = Front(open_upstream.url)
    yield front
    front.live.stop()


def _text(result) -> str:
    return result.content[0].text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_read_only_tools_by_default_and_calls_forwarded(front, mode):
    async with front.client(mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"whoami", "list_notes", "rich"} <= names
        assert "add_note" not in names  # no readOnlyHint: off until allowed
        assert _text(await client.call_tool("whoami", {})) == "anonymous"
        refused = await client.call_tool("add_note", {"text": "x"})
        assert refused.is_error and "allowed tools" in _text(refused)


async def test_allow_list_chooses_the_tools(front, open_upstream):
    front.settings(allowed_tools="add_note, whoami")
    async with front.client() as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"add_note", "whoami"}
        assert _text(await client.call_tool("add_note", {"text": "hello"})) == "added 'hello'"
        refused = await client.call_tool("rich", {})
        assert refused.is_error
    assert open_upstream.notes["anonymous"] == ["hello"]


async def test_results_untouched(front):
    async with front.client() as client:
        result = await client.call_tool("rich", {})
    assert [c.type for c in result.content] == ["text", "image", "resource"]
    assert result.content[1].data == PIXEL
    assert result.structured_content == {"count": 3, "caller": "anonymous"}
    assert result.is_error is False


async def test_upstream_tool_error_stays_a_tool_error(front):
    async with front.client() as client:
        result = await client.call_tool("fail", {"message": "nope"})
    assert result.is_error and _text(result).endswith("fail: nope")


async def test_lists_cached_and_dropped_on_list_changed(front, open_upstream):
    async with front.client() as client:
        await client.list_tools()
        before = len(open_upstream.mcp_requests)
        await client.list_tools()
        assert len(open_upstream.mcp_requests) == before  # served from the cache
        assert _text(await client.call_tool("unlock_extra", {})) == "unlocked"
        names = {t.name for t in (await client.list_tools()).tools}
    assert "extra" in names  # the upstream said tools/list_changed: asked again


async def test_resources_and_prompts_forwarded(front):
    async with front.client() as client:
        resources = await client.list_resources()
        assert [str(r.uri) for r in resources.resources] == ["notes://readme"]
        read = await client.read_resource("notes://readme")
        assert read.contents[0].text == "The notes server keeps notes."
        prompt = await client.get_prompt("summarize", {"topic": "cats"})
        assert "cats" in prompt.messages[0].content.text


async def test_upstream_down_is_a_clear_tool_error(front, open_upstream):
    async with front.client() as client:
        await client.list_tools()
        open_upstream.stop()
        result = await client.call_tool("whoami", {})
    assert result.is_error
    assert f"{open_upstream.url} (tools/call) could not be reached" in _text(result)


async def test_unreachable_upstream_lists_fail_with_a_clear_error():
    front = Front(f"http://127.0.0.1:{free_port()}/mcp")
    try:
        async with front.client() as client:
            with pytest.raises(Exception, match="could not be reached"):
                await client.list_tools()
    finally:
        front.live.stop()


async def test_slow_upstream_is_cut_off(front):
    front.settings(timeout_seconds="0.5")
    async with front.client() as client:
        result = await client.call_tool("slow", {"seconds": 5})
    assert result.is_error and "did not answer within 0.5 s" in _text(result)


async def test_5xx_and_malformed_answers(front, open_upstream):
    async with front.client() as client:
        await client.list_tools()
        open_upstream.fail_with = 503
        result = await client.call_tool("whoami", {})
    assert result.is_error and "answered HTTP 503" in _text(result)


async def test_per_member_keys_each_see_their_own_data():
    upstream = start_upstream("api_key", api_keys={"key-ann": "ann", "key-bob": "bob"})
    front = Front(upstream.url, upstream_auth="header", header_name="X-API-Key")
    front.settings(allowed_tools="whoami list_notes add_note")
    try:
        front.set(user_id=1, upstream=FakeHandle(["key-ann"]))
        async with front.client() as client:
            assert _text(await client.call_tool("whoami", {})) == "ann"
            await client.call_tool("add_note", {"text": "ann's"})
        front.set(user_id=2, upstream=FakeHandle(["key-bob"]))
        async with front.client() as client:
            assert _text(await client.call_tool("whoami", {})) == "bob"
            bobs = await client.call_tool("list_notes", {})
        assert bobs.structured_content == {"result": []}
        assert dict(upstream.notes) == {"ann": ["ann's"], "bob": []}
    finally:
        front.live.stop()
        upstream.stop()


async def test_shared_header_from_settings():
    upstream = start_upstream("api_key", api_keys={"team-key": "team"})
    front = Front(upstream.url, upstream_auth="header", header_name="X-API-Key")
    front.set(connector_mode="shared")
    try:
        async with front.client() as client:
            missing = await client.call_tool("whoami", {})
            assert missing.is_error and "has not been entered" in _text(missing)
            front.settings(header_value="team-key")
            assert _text(await client.call_tool("whoami", {})) == "team"
            front.settings(header_value="wrong")
            refused = await client.call_tool("whoami", {})
            assert refused.is_error and "refused the credential (HTTP 401)" in _text(refused)
    finally:
        front.live.stop()
        upstream.stop()


async def test_oauth_token_refused_after_a_refresh_needs_reauth():
    upstream = start_upstream("api_key", api_keys={"good": "ann"})  # bearer-free stand-in
    front = Front(upstream.url, upstream_auth="oauth")
    handle = FakeHandle(["stale", "also-bad"])
    front.set(upstream=handle)
    try:
        async with front.client() as client:
            result = await client.call_tool("whoami", {})
        assert result.is_error
        assert handle.forced == 1 and len(handle.reauth) == 1
        assert "even after a refresh" in _text(result)
        assert handle.reconnect_url in _text(result)
    finally:
        front.live.stop()
        upstream.stop()


async def _accept(context, params):
    return ElicitResult(action="accept", content={"name": "Ann"})


async def test_a_question_is_answered_where_it_was_asked(front, open_upstream):
    """An older upstream's question waits in the process that asked it: the retry's requestState
    opens in another (the key is shared), which says the call does not wait there."""
    other = Front(open_upstream.url)
    try:
        async with front.client(elicitation_callback=_accept) as client:
            first = await client.session.call_tool("greet", {}, allow_input_required=True)
        assert isinstance(first, InputRequiredResult)
        ((key, asked),) = first.input_requests.items()
        assert asked.params.message == "What is your name?"
        answer = {key: ElicitResult(action="accept", content={"name": "Ann"})}
        async with other.client(elicitation_callback=_accept) as client:
            elsewhere = await client.session.call_tool(
                "greet", {}, input_responses=answer, request_state=first.request_state
            )
        assert elsewhere.is_error and "no longer waits here" in _text(elsewhere)
        async with front.client(elicitation_callback=_accept) as client:
            again = await client.call_tool("greet", {})  # asked and answered in one process
        assert _text(again) == "hello Ann"
    finally:
        other.live.stop()
