"""The dashboard in real Chromium (Debian's package) against a live platform: what operators,
tenant admins and members do, each test keeping a screenshot under artifacts/."""

import os
import shutil
import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest
from django.core import mail

from tests.support.flow import OAuthClient, mcp_post
from tests.support.mcp_client import MemoryStorage, connected, oauth_provider
from tests.support.oauth import Browser

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at"),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume"),
]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
README_SHOTS = ROOT / "docs" / "screenshots"

if not Path(CHROMIUM).exists():  # pragma: no cover - CI installs Debian's chromium
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def chromium():
    """Playwright runs an event loop in this thread while it lives, so Django's guard against
    ORM calls from async code is lifted meanwhile (the ORM calls here are plain sync ones)."""
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            yield browser
            browser.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def open_page(chromium):
    """A fresh browser context (cookies and all) per person."""
    contexts = []

    def open_page(width=1280, height=900):
        context = chromium.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # confirmations say yes
        return page

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page, base: str, username: str, password: str, next_path: str = "/dashboard/"):
    page.goto(f"{base}/accounts/login/?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{next_path}*")


def screenshot(page, name: str, *, readme: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    # The README's copies change only on request, so a test run leaves the checkout clean.
    if readme and os.environ.get("UPDATE_README_SCREENSHOTS"):
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOTS / f"{name}.png")
    return path


def in_thread(fn):
    """Run ``fn`` in its own thread (the SDK client's event loop must not meet Playwright's)."""
    result, errors = [], []

    def run():
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    if errors:
        raise errors[0]
    return result[0] if result else None


def test_operator_creates_a_tenant_and_a_connector(live_url, acme, open_page):
    from django.contrib.auth import get_user_model

    from tenants.models import Connector

    get_user_model().objects.create_superuser("olga", "olga@example.com", "olga-pass-123")
    page = open_page()
    sign_in(page, live_url, "olga", "olga-pass-123")
    assert page.get_by_role("heading", name="Tenants", exact=True).is_visible()
    page.get_by_label("Slug").fill("initech")
    page.get_by_label("Name").fill("Initech")
    page.get_by_role("button", name="Create tenant").click()
    page.wait_for_url(f"{live_url}/dashboard/t/initech/")
    page.get_by_label("Kind").select_option("echo")
    page.locator("#id_connector_slug").fill("crm")
    page.get_by_role("button", name="Create connector").click()
    page.wait_for_url(f"{live_url}/dashboard/connectors/*/")
    url = f"{live_url}/t/initech/crm/mcp"
    assert page.locator("#connector-url").inner_text() == url
    connector = Connector.objects.get(tenant__slug="initech", slug="crm")
    assert connector.url == url
    screenshot(page, "operator-created-connector")

    # The connector answers at once: an unauthenticated request gets the 401 challenge.
    assert httpx.post(url, json={}).status_code == 401
    page.goto(f"{live_url}/dashboard/")
    assert page.get_by_role("link", name="Initech").is_visible()
    screenshot(page, "operator-overview")


def _invitation_link() -> str:
    return next(line for line in mail.outbox[-1].body.splitlines() if "/invitations/" in line)


def test_tenant_admin_invites_resends_and_the_member_joins(live_url, acme, open_page):
    admin = open_page()
    sign_in(admin, live_url, "alice", "alice-pass-123")
    admin.goto(f"{live_url}/dashboard/t/acme/members/")
    admin.get_by_label("Email").fill("carol@example.com")
    admin.get_by_label("Role", exact=True).select_option("member")
    admin.get_by_role("button", name="Send invitation").click()
    admin.get_by_text("Invitation for carol@example.com as member sent").wait_for()
    assert admin.get_by_role("cell", name="carol@example.com", exact=True).is_visible()
    assert admin.get_by_role("button", name="Copy link for carol@example.com").is_visible()
    screenshot(admin, "admin-invited-member")
    first = _invitation_link()

    # The email got lost: the admin resends, and only the new link works.
    admin.get_by_role("button", name="Resend to carol@example.com").click()
    admin.get_by_text("The earlier link no longer works").wait_for()
    second = _invitation_link()
    assert second != first

    invitee = open_page(width=390, height=844)  # a phone
    invitee.goto(first.strip())
    assert invitee.get_by_role("heading", name="This invitation link does not work").is_visible()
    invitee.goto(second.strip())
    assert invitee.get_by_role("heading", name="Join Acme Inc").is_visible()
    assert invitee.get_by_text("at least").first.is_visible()  # the password rules
    invitee.get_by_label("New password").fill("carol-pass-123")
    invitee.get_by_label("The same password again").fill("carol-pass-123")
    invitee.get_by_role("button", name="Create account and join").click()
    invitee.wait_for_url(f"{live_url}/dashboard/t/acme/")
    assert invitee.get_by_role("heading", name="Acme Inc").is_visible()
    screenshot(invitee, "invited-member-phone")
    # The link worked once.
    invitee.goto(second.strip())
    assert invitee.get_by_role("heading", name="This invitation was accepted already").is_visible()


def _connect_sdk_client(url: str) -> dict:
    browser = Browser("bob", "bob-pass-123")

    async def scenario():
        async with connected(url, oauth_provider(url, browser, MemoryStorage())) as client:
            result = await client.call_tool("echo", {"text": "hello"})
            return {"text": result.content[0].text}

    return anyio.run(scenario)


def test_a_members_client_connection_appears_in_the_trace_step_by_step(live_url, acme, open_page):
    connector = acme["connector"]
    page = open_page()
    sign_in(page, live_url, "alice", "alice-pass-123")
    page.goto(f"{live_url}/dashboard/connectors/{connector.pk}/trace")
    assert page.get_by_text("No connect attempts").is_visible()

    assert in_thread(lambda: _connect_sdk_client(connector.url)) == {"text": "hello"}

    # The page updates itself: the attempt appears without a reload.
    attempt = page.locator("article.attempt").first
    attempt.wait_for()
    page.locator('article.attempt[data-state="connected"]').wait_for()
    kinds = attempt.locator("ol.steps li").evaluate_all("els => els.map(e => e.dataset.kind)")
    expected = [
        "mcp.unauthenticated",
        "discovery.resource_metadata",
        "discovery.as_metadata",
        "oauth.register",
        "oauth.authorize",
        "oauth.consent",
        "oauth.code_issued",
        "oauth.token",
        "mcp.first_call",
    ]
    assert [k for k in kinds if k in expected] == expected
    assert attempt.get_by_text("Claude").first.is_visible()
    assert "bob" in attempt.inner_text()
    screenshot(page, "trace-connected", readme=True)

    # Filters: only failures of this client: the 401 probe is "denied".
    page.get_by_label("Outcome").select_option("denied")
    page.get_by_role("button", name="Filter").click()
    kinds = page.locator("ol.steps li").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds == ["mcp.unauthenticated"]


def test_a_client_that_never_fetches_metadata_shows_where_it_stopped(live_url, acme, open_page):
    connector = acme["connector"]
    response = httpx.post(
        connector.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize"},
        headers={"User-Agent": "broken-client/0.1"},
    )
    assert response.status_code == 401  # and the client gives up here

    page = open_page()
    sign_in(page, live_url, "alice", "alice-pass-123")
    page.goto(f"{live_url}/dashboard/connectors/{connector.pk}/trace")
    attempt = page.locator("article.attempt").first
    assert "stopped after: Unauthenticated request (401)" in attempt.inner_text()
    hint = attempt.locator(".hint").inner_text()
    assert "never fetched protected-resource metadata" in hint
    assert "resource_metadata" in hint
    assert (
        attempt.locator(".progress li.stop").inner_text().endswith("Unauthenticated request (401)")
    )
    screenshot(page, "trace-stopped", readme=True)


def test_revoking_a_client_makes_its_next_mcp_call_fail_with_401(live_url, acme, open_page):
    connector = acme["connector"]
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), connector.url)["access_token"]
    assert mcp_post(connector.url, token).status_code == 200

    page = open_page()
    sign_in(page, live_url, "alice", "alice-pass-123")
    page.goto(f"{live_url}/dashboard/connectors/{connector.pk}/")
    row = page.get_by_role("row").filter(has_text="Test client")
    row.get_by_role("button", name="Revoke").click()
    page.get_by_text("is disconnected").wait_for()
    assert page.get_by_role("row").filter(has_text="Test client").count() == 0
    screenshot(page, "client-revoked")

    response = mcp_post(connector.url, token)
    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]


def test_tenant_admin_connects_quickbooks_in_shared_mode_in_the_browser(
    live_url, acme, open_page, qbo_emulator, settings
):
    from tenants.services import connector_create
    from upstream.models import UpstreamConnection

    qbo_emulator.emulator.configure(
        redirect_uris=[f"{live_url}/upstream/quickbooks/callback"], auto_approve=True
    )
    qbo_emulator.point_platform_at(settings)
    connector = connector_create(tenant=acme["tenant"], kind="quickbooks", mode="shared")

    page = open_page()
    sign_in(page, live_url, "alice", "alice-pass-123")
    page.goto(f"{live_url}/dashboard/connectors/{connector.pk}/")
    page.get_by_role("button", name="Connect QuickBooks").click()
    page.get_by_role("heading", name="QuickBooks connected").wait_for()
    shared = UpstreamConnection.objects.get(connector=connector)
    assert shared.user is None and shared.status == "active"

    page.goto(f"{live_url}/dashboard/connectors/{connector.pk}/")
    status = page.locator(f'[data-connection-status="{shared.pk}"]')
    assert status.inner_text() == "Active"
    assert shared.external_account_id in page.locator("#upstream-heading + p + div").inner_text()
    screenshot(page, "connector-quickbooks-shared", readme=True)

    # Live status: the page follows a status change without a reload.
    UpstreamConnection.objects.filter(pk=shared.pk).update(status="needs_reauth")
    page.locator(f'[data-connection-status="{shared.pk}"].needs_reauth').wait_for(timeout=15_000)


def test_a_member_is_warned_before_allow_when_the_shared_account_is_missing(
    live_url, acme, open_page
):
    """The consent page says the tenant's QuickBooks is not connected, Allow is disabled, and
    *Return to the client* sends the client temporarily_unavailable (with state and iss)."""
    from tenants.services import connector_create
    from tests.support.flow import pkce_pair

    connector = connector_create(tenant=acme["tenant"], kind="quickbooks", mode="shared")
    client = OAuthClient.register(live_url)
    seen = []
    page = open_page()
    # The client's callback (claude.ai) answered here: the browser never leaves the machine.
    page.route(
        "https://claude.ai/**", lambda route: (seen.append(route.request.url), route.fulfill())
    )
    page.goto(client.authorize_url(pkce_pair()[1], resource=connector.url))
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("bob-pass-123")
    page.get_by_role("button", name="Sign in").click()

    warning = page.get_by_role("alert")
    warning.wait_for()
    assert "cannot be used right now" in warning.inner_text()
    assert "has not been connected yet" in warning.inner_text()
    assert page.get_by_role("button", name="Allow").is_disabled()
    screenshot(page, "consent-shared-account-missing")

    page.get_by_role("button", name="Return to Test client").click()
    page.wait_for_url("https://claude.ai/**")
    told = dict(httpx.URL(seen[-1]).params)
    assert told["error"] == "temporarily_unavailable"
    assert (told["state"], told["iss"]) == ("st4te", live_url)


def test_sign_out_error_pages_and_a_stale_form_kept(live_url, acme, open_page):
    page = open_page()
    sign_in(page, live_url, "bob", "bob-pass-123")
    # A member on an admin page, and an unknown page: our own pages, with a way back.
    page.goto(f"{live_url}/dashboard/t/acme/members/")
    assert page.get_by_role("heading", name="You cannot open this page").is_visible()
    page.goto(f"{live_url}/dashboard/no-such-page")
    assert page.get_by_role("heading", name="Page not found").is_visible()
    screenshot(page, "error-404")
    # Sign out lands on our signed-out page, whose link signs in here (not in Django admin).
    page.goto(f"{live_url}/dashboard/")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="You are signed out").wait_for()
    page.get_by_role("link", name="Sign in again").click()
    page.wait_for_url(f"{live_url}/accounts/login/**")
    screenshot(page, "signed-out-sign-in")

    # An admin edits settings; the session ends before Save; the edit survives sign-in.
    admin = open_page()
    sign_in(admin, live_url, "alice", "alice-pass-123")
    connector = acme["connector"]
    admin.goto(f"{live_url}/dashboard/connectors/{connector.pk}/")
    admin.get_by_label("Name", exact=True).fill("Echo, renamed before lunch")
    admin.context.clear_cookies(name="sessionid")
    admin.get_by_role("button", name="Save settings").click()
    admin.wait_for_url(f"{live_url}/accounts/login/**")
    admin.get_by_label("Username").fill("alice")
    admin.get_by_label("Password").fill("alice-pass-123")
    admin.get_by_role("button", name="Sign in").click()
    admin.get_by_role("heading", name="Send your changes again").wait_for()
    admin.get_by_role("button", name="Try again").click()
    admin.wait_for_url(f"{live_url}/dashboard/connectors/{connector.pk}/")
    admin.get_by_text("Connector settings saved.").wait_for()
    connector.refresh_from_db()
    assert connector.name == "Echo, renamed before lunch"

    # A stale CSRF token (signed out and in elsewhere): "your session expired, try again".
    admin.get_by_label("Name", exact=True).fill("Echo, renamed after a long lunch")
    admin.context.add_cookies([{"name": "csrftoken", "value": "x" * 32, "url": live_url}])
    admin.get_by_role("button", name="Save settings").click()
    admin.get_by_role("heading", name="Your session expired").wait_for()
    screenshot(admin, "session-expired-try-again")
    admin.get_by_role("button", name="Try again").click()
    admin.get_by_text("Connector settings saved.").wait_for()
    connector.refresh_from_db()
    assert connector.name == "Echo, renamed after a long lunch"

    # Reloading a button's target: our 405 page, not a blank one.
    admin.goto(f"{live_url}/dashboard/connectors/{connector.pk}/test")
    assert admin.get_by_role("heading", name="This address takes a form, not a visit").is_visible()


def test_the_audit_log_in_chromium_admin_sees_the_tenant_member_their_own(
    live_url, acme, open_page
):
    import csv
    import json

    from events.audit import audit_buffer

    url = acme["connector"].url
    for who, text in (("alice", "from alice"), ("bob", "from bob")):
        token = OAuthClient.register(live_url).tokens(Browser(who, f"{who}-pass-123"), url)[
            "access_token"
        ]
        echo = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}},
        }
        assert mcp_post(url, token, echo).status_code == 200
        fail = {**echo, "params": {"name": "fail", "arguments": {"message": f"{who} failed"}}}
        assert mcp_post(url, token, fail).status_code == 200
    deadline = time.monotonic() + 10
    while audit_buffer.pending() < 4:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(audit_buffer.flush()) == 4

    admin = open_page()
    sign_in(admin, live_url, "alice", "alice-pass-123", "/dashboard/t/acme/")
    admin.get_by_role("link", name="Audit log").click()
    rows = admin.locator("#audit-records tbody tr")
    rows.first.wait_for()
    assert rows.count() == 4
    admin.get_by_label("Member").fill("bob")
    admin.get_by_label("Outcome").select_option("error")
    admin.get_by_role("button", name="Filter").click()
    admin.wait_for_url("**member=bob**")
    assert rows.count() == 1
    assert "bob failed" in rows.first.inner_text()
    admin.screenshot(path=str(ARTIFACTS / "audit-log.png"), full_page=True)

    with admin.expect_download() as download:
        admin.get_by_role("link", name="JSON lines").click()
    lines = Path(download.value.path()).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["member"], r["tool"], r["outcome"]) for r in records] == [("bob", "fail", "error")]
    assert records[0]["arguments"] == {"message": "bob failed"}

    admin.goto(f"{live_url}/dashboard/t/acme/audit/")
    with admin.expect_download() as download:
        admin.get_by_role("link", name="CSV").click()
    table = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    assert sorted((r["member"], r["tool"]) for r in table) == [
        ("alice", "echo"),
        ("alice", "fail"),
        ("bob", "echo"),
        ("bob", "fail"),
    ]
    echoed = next(r for r in table if r["member"] == "alice" and r["tool"] == "echo")
    assert json.loads(echoed["arguments"])["keys"] == ["text"]  # a read: digest only
    assert "from alice" not in Path(download.value.path()).read_text()

    member = open_page()
    sign_in(member, live_url, "bob", "bob-pass-123", "/dashboard/t/acme/")
    member.get_by_role("link", name="Your tool calls (audit log)").click()
    member.locator("#audit-records tbody tr").first.wait_for()
    own = member.locator("#audit-records tbody tr")
    assert own.count() == 2
    assert "alice" not in member.locator("#audit-records").inner_text()
    assert member.get_by_label("Member").count() == 0  # members filter only their own calls
