"""Existing MCP servers hosted behind a tenant's ``remote_mcp`` connector, end to end.

Real upstream servers (the `mcp` SDK, tests/support/upstreams.py) on loopback; the live
platform; clients of two generations: the SDK's OAuth client (modern) and a hand-driven
2025-03-26-style client (no ``resource``, connector chosen on the consent page).
"""

import time

import anyio
import pytest
from django.db import connection as db

from config import crypto
from events.models import Event
from tests.support.flow import OAuthClient, mcp_post, pkce_pair
from tests.support.live import free_port
from tests.support.mcp_client import MemoryStorage, connected, oauth_provider
from tests.support.oauth import Browser
from upstream.models import UpstreamConnection

pytestmark = pytest.mark.django_db(transaction=True)

READS = {"whoami", "list_notes", "rich", "fail", "slow", "unlock_extra", "count", "greet", "haiku"}


@pytest.fixture
def remote(live_url, acme):
    """Make a remote_mcp connector in acme (or ``tenant``)."""
    from tenants.services import connector_create

    def make(slug, *, mode="per_user", tenant=None, **settings):
        return connector_create(
            tenant=tenant or acme["tenant"],
            kind="remote_mcp",
            slug=slug,
            mode=mode,
            settings=settings,
        )

    return make


def _modern(url, browser, tool="whoami", arguments=None, list_too=True):
    """The SDK's OAuth client connects through the whole flow, lists tools, calls one."""

    async def scenario():
        async with connected(url, oauth_provider(url, browser, MemoryStorage())) as client:
            names = {t.name for t in (await client.list_tools()).tools} if list_too else set()
            result = await client.call_tool(tool, arguments or {})
            return names, result

    return anyio.run(scenario)


def _text(result) -> str:
    return result.content[0].text


def _rpc(url, token, tool, arguments=None, version="2025-03-26"):
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments or {}},
    }
    response = mcp_post(url, token, payload, headers={"MCP-Protocol-Version": version}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["result"]


# --- no auth ----------------------------------------------------------------------------------


def test_open_upstream_behind_a_connector(remote, upstreams):
    upstream = upstreams("open", legacy_only=True)
    connector = remote("notes", upstream_url=upstream.url)
    browser = Browser("bob", "bob-pass-123")
    names, result = _modern(connector.url, browser)
    assert names == READS  # add_note has no readOnlyHint: off by default
    assert _text(result) == "anonymous"
    assert not UpstreamConnection.objects.exists()  # nothing to connect: no hop
    assert not any(str(p.url).startswith(upstream.base) for p in browser.pages)


def test_upstream_down_is_a_clear_tool_error(remote, upstreams):
    upstream = upstreams("open")
    connector = remote("notes", upstream_url=upstream.url)
    client = OAuthClient.register(connector.url.split("/t/")[0])
    token = client.tokens(Browser("bob", "bob-pass-123"), connector.url)["access_token"]
    assert _rpc(connector.url, token, "whoami")["content"][0]["text"] == "anonymous"
    upstream.stop()
    result = _rpc(connector.url, token, "whoami")
    assert result["isError"] is True
    assert f"{upstream.url} (tools/call) could not be reached" in result["content"][0]["text"]
    # The gateway records the call after the answer has gone out: wait for the row.
    for _ in range(100):
        failed = Event.objects.filter(connector=connector, kind="mcp.call", outcome="error").last()
        if failed is not None:
            break
        time.sleep(0.05)
    assert "could not be reached" in failed.detail["error"]


# --- a secret header --------------------------------------------------------------------------


def test_shared_header_entered_once_by_an_admin(remote, upstreams, live_url):
    upstream = upstreams("api_key", api_keys={"team-key": "team"})
    connector = remote(
        "notes",
        mode="shared",
        upstream_url=upstream.url,
        upstream_auth="header",
        header_name="X-API-Key",
        header_value="team-key",
    )
    assert connector.settings["header_value"].startswith("sealed:")
    assert "team-key" not in str(connector.settings)
    _, result = _modern(connector.url, Browser("bob", "bob-pass-123"))
    assert _text(result) == "team"


def test_per_member_keys_two_members_each_see_their_own_data(remote, upstreams):
    upstream = upstreams("api_key", api_keys={"key-bob": "bob-up", "key-alice": "alice-up"})
    connector = remote(
        "notes",
        upstream_url=upstream.url,
        upstream_auth="header",
        header_name="X-API-Key",
        allowed_tools="whoami list_notes add_note",
    )
    bob = Browser("bob", "bob-pass-123", upstream_key="key-bob")
    names, result = _modern(connector.url, bob, "add_note", {"text": "bob's note"})
    assert names == {"whoami", "list_notes", "add_note"}
    assert not result.is_error, result
    assert any('name="credential"' in p.text for p in bob.pages)  # the member typed the key

    alice = Browser("alice", "alice-pass-123", upstream_key="key-alice")
    _, mine = _modern(connector.url, alice, "list_notes", list_too=False)
    assert mine.structured_content == {"result": []}
    assert dict(upstream.notes) == {"bob-up": ["bob's note"], "alice-up": []}

    stored = UpstreamConnection.objects.filter(connector=connector).order_by("user__username")
    assert [c.user.username for c in stored] == ["alice", "bob"]
    with db.cursor() as cursor:
        cursor.execute("SELECT access_token_encrypted FROM upstream_upstreamconnection")
        raw = " ".join(row[0] for row in cursor.fetchall())
    assert "key-bob" not in raw and "key-alice" not in raw
    assert crypto.decrypt(stored[1].access_token_encrypted) == "key-bob"


# --- OAuth: the hand-rolled 2025-03-26 server -------------------------------------------------


def test_hand_rolled_2025_03_26_server_with_a_modern_client(remote, upstreams):
    upstream = upstreams("legacy_oauth", users={"bob-up": "pw-up"})
    connector = remote("books", upstream_url=upstream.url, upstream_auth="oauth")
    browser = Browser(
        "bob", "bob-pass-123", also_visits=(upstream.base,), upstream_login=("bob-up", "pw-up")
    )
    names, result = _modern(connector.url, browser)
    assert names == READS
    assert _text(result) == "bob-up"
    # The browser went to the upstream's own sign-in page and back.
    assert any("Sign in to Notes" in p.text for p in browser.pages)
    connection = UpstreamConnection.objects.get(connector=connector)
    assert connection.user.username == "bob" and connection.status == "active"
    assert connection.provider == "remote_mcp"
    # The upstream saw PKCE and its own client registration (DCR), never our MCP token.
    exchange = upstream.token_requests[-1]
    assert exchange["code_verifier"] and exchange["client_id"].startswith("dcr-")
    hop = Event.objects.get(connector=connector, kind="upstream.hop")
    assert hop.detail["provider"] == "remote_mcp"
    # The connect trace shows the hop with how the upstream's authorization server was found.
    from events.trace import connect_trace

    steps = [s for a in connect_trace(connector).attempts for s in a.steps]
    shown = next(s for s in steps if s.event.kind == "upstream.hop")
    assert "found via" in shown.summary and "oauth-authorization-server: 200" in shown.summary
    assert any(s.event.kind == "upstream.callback" for s in steps)
    assert any(
        "2025-03-26" in step or "oauth-authorization-server" in step for step in hop.detail["steps"]
    )


def test_hand_rolled_server_with_a_2025_03_26_client(remote, upstreams, live_url):
    upstream = upstreams("legacy_oauth", users={"bob-up": "pw-up"})
    connector = remote("books", upstream_url=upstream.url, upstream_auth="oauth")
    client = OAuthClient.register(live_url)
    browser = Browser(
        "bob",
        "bob-pass-123",
        also_visits=(upstream.base,),
        upstream_login=("bob-up", "pw-up"),
        connector_id=connector.pk,
    )
    tokens = client.tokens(browser, resource=None)  # 2025-03-26: no resource parameter
    result = _rpc(connector.url, tokens["access_token"], "whoami")
    assert result["content"][0]["text"] == "bob-up"


def test_revoked_upstream_grant_needs_reauth_with_the_reconnect_link(remote, upstreams, live_url):
    upstream = upstreams("legacy_oauth", users={"bob-up": "pw-up"})
    connector = remote("books", upstream_url=upstream.url, upstream_auth="oauth")
    browser = Browser(
        "bob", "bob-pass-123", also_visits=(upstream.base,), upstream_login=("bob-up", "pw-up")
    )
    client = OAuthClient.register(live_url)
    token = client.tokens(browser, connector.url)["access_token"]
    assert _rpc(connector.url, token, "whoami")["content"][0]["text"] == "bob-up"

    upstream.revoke_all()  # the upstream's admin ends every grant
    result = _rpc(connector.url, token, "whoami")
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert f"/dashboard/connectors/{connector.pk}/connect" in text
    connection = UpstreamConnection.objects.get(connector=connector)
    assert connection.status == "needs_reauth"
    assert "invalid_grant" in connection.last_error


# --- OAuth: a modern upstream -----------------------------------------------------------------


def test_modern_upstream_with_cimd_and_rotation_by_the_refresher(remote, upstreams, live_url):
    from upstream.refresh import upstream_connection_refresh

    upstream = upstreams("modern_oauth", users={"bob-up": "pw-up"})
    connector = remote("notes", upstream_url=upstream.url, upstream_auth="oauth")
    browser = Browser(
        "bob", "bob-pass-123", also_visits=(upstream.base,), upstream_login=("bob-up", "pw-up")
    )
    _, result = _modern(connector.url, browser)
    assert _text(result) == "bob-up"
    # The platform identified itself with its client ID metadata document under PUBLIC_URL.
    cimd = f"{live_url}/upstream/remote_mcp/client-metadata.json"
    assert upstream.token_requests[-1]["client_id"] == cimd
    assert upstream.token_requests[-1]["resource"] == upstream.url

    connection = UpstreamConnection.objects.get(connector=connector)
    spent = crypto.decrypt(connection.refresh_token_encrypted)
    upstream_connection_refresh(connection_id=connection.pk, force=True)  # what the task runs
    connection.refresh_from_db()
    assert crypto.decrypt(connection.refresh_token_encrypted) != spent
    assert upstream.token_requests[-1]["grant_type"] == "refresh_token"
    assert len(upstream.refresh_tokens) == 1  # the spent one is dead upstream

    client = OAuthClient.register(live_url)
    token = client.tokens(browser, connector.url)["access_token"]
    assert _rpc(connector.url, token, "whoami", version="2025-11-25")["content"][0]["text"] == (
        "bob-up"
    )


def test_an_unreachable_upstream_tells_the_client_temporarily_unavailable(remote, live_url):
    """The member's own upstream sign-in cannot start (its server is down): the client gets
    temporarily_unavailable after consent instead of a page it never sees."""
    down = f"http://127.0.0.1:{free_port()}/mcp"
    connector = remote("down", upstream_url=down, upstream_auth="oauth")
    client = OAuthClient.register(live_url)
    bob = Browser("bob", "bob-pass-123")
    told = bob.authorize(client.authorize_url(pkce_pair()[1], resource=connector.url))
    assert (told["error"], told["state"], told["iss"]) == (
        "temporarily_unavailable",
        "st4te",
        live_url,
    )
    assert "could not start" in told["error_description"]
    assert not UpstreamConnection.objects.filter(connector=connector).exists()


def test_client_metadata_document_is_served(live_url):
    import httpx

    response = httpx.get(f"{live_url}/upstream/remote_mcp/client-metadata.json")
    assert response.status_code == 200
    document = response.json()
    assert document["client_id"] == str(response.url)
    assert document["redirect_uris"] == [f"{live_url}/upstream/remote_mcp/callback"]
    assert httpx.get(f"{live_url}/upstream/quickbooks/client-metadata.json").status_code == 404


# --- tenants stay apart -----------------------------------------------------------------------


def test_tenant_a_token_never_reaches_tenant_b_credential(remote, upstreams, live_url, acme):
    upstream = upstreams("api_key", api_keys={"acme-key": "acme", "globex-key": "globex"})
    common = {"upstream_url": upstream.url, "upstream_auth": "header", "header_name": "X-API-Key"}
    mine = remote("notes", mode="shared", header_value="acme-key", **common)
    theirs = remote(
        "notes", mode="shared", tenant=acme["other"], header_value="globex-key", **common
    )
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), mine.url)["access_token"]
    assert _rpc(mine.url, token, "whoami")["content"][0]["text"] == "acme"
    response = mcp_post(theirs.url, token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert {r["caller"] for r in upstream.mcp_requests} == {"acme"}  # globex's key never used


def test_the_sweep_keeps_upstream_tokens_fresh(remote, upstreams, live_url):
    """Beat's sweep finds the connection due (its upstream token outlives the margin by less
    than the margin) and the refresh task rotates it under the lease."""
    from config.celery import app as celery_app
    from upstream import tasks

    upstream = upstreams("modern_oauth", users={"bob-up": "pw-up"}, access_ttl=120)
    connector = remote("notes", upstream_url=upstream.url, upstream_auth="oauth")
    browser = Browser(
        "bob", "bob-pass-123", also_visits=(upstream.base,), upstream_login=("bob-up", "pw-up")
    )
    client = OAuthClient.register(live_url)
    token = client.tokens(browser, connector.url)["access_token"]
    assert _rpc(connector.url, token, "whoami")["content"][0]["text"] == "bob-up"  # used now
    connection = UpstreamConnection.objects.get(connector=connector)
    before = crypto.decrypt(connection.refresh_token_encrypted)
    celery_app.conf.task_always_eager = True
    try:
        assert tasks.upstream_sweep() == 1
    finally:
        celery_app.conf.task_always_eager = False
    connection.refresh_from_db()
    assert connection.status == "active" and connection.last_error == ""
    assert crypto.decrypt(connection.refresh_token_encrypted) != before
    assert [r["grant_type"] for r in upstream.token_requests][-1] == "refresh_token"
    assert _rpc(connector.url, token, "whoami")["content"][0]["text"] == "bob-up"


def test_shared_oauth_connection_made_once_by_an_admin(remote, upstreams, live_url):
    upstream = upstreams("legacy_oauth", users={"team-up": "pw-team"})
    connector = remote("books", mode="shared", upstream_url=upstream.url, upstream_auth="oauth")
    # Before the admin connects it, a member is warned and the client is told, not left waiting.
    client = OAuthClient.register(live_url)
    early = Browser("bob", "bob-pass-123", also_visits=(upstream.base,))
    told = early.authorize(client.authorize_url(pkce_pair()[1], resource=connector.url))
    assert (told["error"], told["state"], told["iss"]) == (
        "temporarily_unavailable",
        "st4te",
        live_url,
    )
    assert "has not been connected yet" in told["error_description"]
    assert any("cannot be used right now" in page.text for page in early.pages)
    admin = Browser(
        "alice",
        "alice-pass-123",
        also_visits=(upstream.base,),
        upstream_login=("team-up", "pw-team"),
    )
    admin.sign_in(live_url)
    page = admin.submit(f"{live_url}/dashboard/connectors/{connector.pk}/connect")
    assert "Sign in to Notes" in page.text  # the upstream's own sign-in page
    done = admin.http.post(  # the admin signs in there; the upstream sends them back
        str(page.url), data={"username": "team-up", "password": "pw-team"}, follow_redirects=True
    )
    assert done.status_code == 200 and "connected" in done.text, done.text[:300]
    shared = UpstreamConnection.objects.get(connector=connector)
    assert shared.user is None and shared.connected_by.username == "alice"
    # A member's client now connects without visiting the upstream and acts as the team.
    bob = Browser("bob", "bob-pass-123")
    _, result = _modern(connector.url, bob, list_too=False)
    assert _text(result) == "team-up"
    assert not any(str(p.url).startswith(upstream.base) for p in bob.pages)


def test_open_and_per_member_header_upstreams_with_a_2025_03_26_client(remote, upstreams, live_url):
    open_upstream = upstreams("open", legacy_only=True)
    keyed = upstreams("api_key", api_keys={"key-bob": "bob-up"})
    open_one = remote("open", upstream_url=open_upstream.url)
    keyed_one = remote(
        "keyed", upstream_url=keyed.url, upstream_auth="header", header_name="X-API-Key"
    )
    for connector, expected in ((open_one, "anonymous"), (keyed_one, "bob-up")):
        client = OAuthClient.register(live_url)
        browser = Browser("bob", "bob-pass-123", connector_id=connector.pk, upstream_key="key-bob")
        tokens = client.tokens(browser, resource=None)  # no resource: chosen on the consent page
        assert _rpc(connector.url, tokens["access_token"], "whoami")["content"][0]["text"] == (
            expected
        )


# --- outbound connections only to public addresses --------------------------------------------


def test_upstream_name_resolving_to_a_private_address_is_refused_at_connect_time(
    remote, upstreams, live_url, settings
):
    """The URL passed its check when saved; by the time of the call its name resolves to an
    address the platform does not connect to (DNS rebinding, or the operator narrowed
    OUTBOUND_ALLOWED_NETWORKS): the resolved address is checked at every connection."""
    upstream = upstreams("open")
    connector = remote("notes", upstream_url=upstream.url.replace("127.0.0.1", "localhost"))
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), connector.url)["access_token"]
    settings.OUTBOUND_ALLOWED_NETWORKS = ()  # production's default: no private networks
    result = _rpc(connector.url, token, "whoami")
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "refused by the platform: localhost resolves to" in text
    assert "is not a public address" in text
    assert upstream.mcp_requests == []  # not one request reached it
