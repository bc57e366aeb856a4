"""What an upstream sends the client during a call reaches it through the platform, and back.

Real upstreams (tests/support/upstreams.py) of both generations behind a ``remote_mcp``
connector; the live platform; the SDK's client with its OAuth provider, speaking 2026-07-28
(``auto``) or the initialize handshake (``legacy``).
"""

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CreateMessageResult, ElicitResult, TextContent

from tests.support.mcp_client import MemoryStorage, connected, oauth_provider
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connector(live_url, acme, upstreams):
    """A remote_mcp connector in acme in front of a new open upstream."""
    from tenants.services import connector_create

    def make(slug="notes", **options):
        upstream = upstreams(**options)
        made = connector_create(
            tenant=acme["tenant"],
            kind="remote_mcp",
            slug=slug,
            mode="per_user",
            settings={"upstream_url": upstream.url},
        )
        return made, upstream

    return make


def _session(url, scenario, **options):
    """Run ``scenario(client)`` with bob's SDK client connected through the whole flow."""

    async def run():
        provider = oauth_provider(url, Browser("bob", "bob-pass-123"), MemoryStorage())
        async with connected(url, provider, **options) as client:
            return await scenario(client)

    return anyio.run(run)


def _text(result) -> str:
    return result.content[0].text


# --- progress and log messages ----------------------------------------------------------------


@pytest.mark.parametrize("legacy_upstream", [False, True], ids=["modern-upstream", "old-upstream"])
@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-client", "2025-client"])
def test_progress_and_log_messages_reach_the_client(connector, mode, legacy_upstream):
    made, _ = connector(legacy_only=legacy_upstream)
    progress, logs = [], []

    async def on_progress(value, total, message):
        progress.append((value, total, message))

    async def on_log(params):
        logs.append(params.data)

    async def scenario(client):
        return await client.call_tool("count", {"steps": 3}, progress_callback=on_progress)

    result = _session(made.url, scenario, mode=mode, logging_callback=on_log, log_level="info")
    assert _text(result) == "counted to 3"
    assert progress == [(step, 3, f"step {step} of 3") for step in (1, 2, 3)]
    assert logs == ["counted to 3"]


# --- elicitation and sampling -----------------------------------------------------------------


async def _answer_name(context, params):
    assert params.message == "What is your name?"
    return ElicitResult(action="accept", content={"name": "Bob"})


async def _write_haiku(context, params):
    asked = params.messages[0].content.text
    return CreateMessageResult(
        role="assistant", content=TextContent(type="text", text=f"<{asked}>"), model="test-model"
    )


@pytest.mark.parametrize("legacy_upstream", [False, True], ids=["modern-upstream", "old-upstream"])
def test_elicitation_reaches_a_2026_client_and_its_answer_the_upstream(connector, legacy_upstream):
    made, upstream = connector(legacy_only=legacy_upstream)

    async def scenario(client):
        return await client.call_tool("greet", {})

    result = _session(made.url, scenario, elicitation_callback=_answer_name)
    assert not result.is_error, result
    assert _text(result) == "hello Bob"


@pytest.mark.parametrize("legacy_upstream", [False, True], ids=["modern-upstream", "old-upstream"])
def test_sampling_reaches_a_2026_client_and_its_answer_the_upstream(connector, legacy_upstream):
    made, _ = connector(legacy_only=legacy_upstream)

    async def scenario(client):
        return await client.call_tool("haiku", {"topic": "cats"})

    result = _session(made.url, scenario, sampling_callback=_write_haiku)
    assert not result.is_error, result
    assert _text(result) == "the client's model wrote: <Write a haiku about cats.>"


def test_a_2025_client_cannot_be_asked_and_the_upstream_hears_why(connector):
    made, _ = connector(legacy_only=True)

    async def scenario(client):
        with anyio.fail_after(20):  # the upstream is answered at once, never left waiting
            with pytest.raises(MCPError) as refused:
                await client.call_tool("greet", {})
        return refused.value

    error = _session(made.url, scenario, mode="legacy", elicitation_callback=_answer_name)
    # The upstream's tool failed on our answer, and its JSON-RPC error reaches the client.
    assert "elicitation/create cannot be answered" in error.error.message
    assert "only 2026-07-28 clients can be asked" in error.error.message


# --- list changes -----------------------------------------------------------------------------


def test_list_changed_from_the_upstream_refreshes_the_tools(connector):
    made, upstream = connector(legacy_only=True)

    async def scenario(client):
        before = {t.name for t in (await client.list_tools()).tools}
        assert _text(await client.call_tool("unlock_extra", {})) == "unlocked"
        after = {t.name for t in (await client.list_tools()).tools}
        return before, after

    before, after = _session(made.url, scenario)
    assert "extra" not in before and "extra" in after


# --- the upstream's instructions ----------------------------------------------------------------


@pytest.mark.parametrize("legacy_upstream", [False, True], ids=["modern-upstream", "old-upstream"])
@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-client", "2025-client"])
def test_the_upstream_instructions_reach_the_client(connector, mode, legacy_upstream):
    made, _ = connector(legacy_only=legacy_upstream)

    async def scenario(client):
        return client.instructions

    assert _session(made.url, scenario, mode=mode) == "A notes server used as a test upstream."
