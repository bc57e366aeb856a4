"""A member connects an MCP client to a connector of a tenant that signs in through its
OpenID Connect provider: /authorize sends them straight there, and back to consent."""

import os
import queue
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest

from tenants.models import Membership
from tests.support.flow import OAuthClient, mcp_post
from tests.support.mcp_client import connected, oauth_provider
from tests.support.oauth import CSRF, Browser

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at"),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume"),
]


def _register(live_url: str) -> OAuthClient:
    # The first request to a fresh live server can take seconds on a loaded machine: more than
    # OAuthClient.register's default timeout.
    httpx.get(f"{live_url}/.well-known/oauth-authorization-server", timeout=60)
    return OAuthClient.register(live_url)


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def test_authorize_goes_straight_to_the_tenants_provider_and_the_token_works(
    live_url, acme_sso, idp
):
    idp.person("mia", email="mia@acme.test", groups=["acme-staff"])
    connector = acme_sso.tenant.connectors.get(slug="echo")
    client = _register(live_url)
    browser = Browser("mia", "idp-pass-123", also_visits=(idp.url,))

    tokens = client.tokens(browser, connector.url)

    first = browser.pages[0]
    assert first.status_code == 302
    assert urlsplit(first.headers["location"]).path == "/sso/t/acme/start"
    assert not any(str(p.url).startswith(f"{live_url}/accounts/login/") for p in browser.pages)
    assert Membership.objects.get(user__email="mia@acme.test").role == "member"
    answer = mcp_post(
        connector.url,
        tokens["access_token"],
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}},
        },
    )
    assert answer.status_code == 200
    assert '"user":"mia@acme.test"' in answer.text.replace(" ", "")


def test_with_passwords_allowed_the_sign_in_page_offers_the_tenants_provider(
    live_url, acme_sso, idp
):
    acme_sso.local_passwords_allowed = True
    acme_sso.save()
    connector = acme_sso.tenant.connectors.get(slug="echo")
    client = _register(live_url)
    http = httpx.Client()

    login = http.get(client.authorize_url("x" * 43, resource=connector.url), follow_redirects=True)

    assert urlsplit(str(login.url)).path == "/accounts/login/"
    assert "Sign in with Acme IdP" in login.text
    assert 'name="password"' in login.text
    # The dashboard's sign-in finds the provider by email domain.
    page = http.get(f"{live_url}/accounts/login/")
    assert "Sign in with your company account" in page.text
    by_email = http.post(
        f"{live_url}/sso/start",
        data={"csrfmiddlewaretoken": CSRF.search(page.text).group(1), "email": "x@ACME.test"},
    )
    assert by_email.status_code == 302
    assert by_email.headers["location"].startswith(f"{idp.issuer}/authorize/?")
    query = parse_qs(urlsplit(by_email.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["nonce"] and query["state"] and query["code_challenge"]
    unknown = http.post(
        f"{live_url}/sso/start",
        data={"csrfmiddlewaretoken": CSRF.search(page.text).group(1), "email": "x@other.test"},
    )
    assert unknown.status_code == 404
    assert "No single sign-on for this address" in unknown.text


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")
def test_mcp_client_connects_while_the_member_signs_in_at_the_provider_in_chromium(
    live_url, acme_sso, idp
):
    from playwright.sync_api import sync_playwright

    idp.person("noa", email="noa@acme.test", groups=["acme-admins"])
    url = acme_sso.tenant.connectors.get(slug="echo").url
    authorization_urls: queue.Queue = queue.Queue()
    redirects: queue.Queue = queue.Queue()

    class ChromiumHandoff:
        """The SDK client's browser: hands the URL to Chromium in the test's thread."""

        def authorize(self, authorization_url: str) -> dict:
            authorization_urls.put(authorization_url)
            location = redirects.get(timeout=120)
            query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
            return query

    outcome: dict = {}

    def mcp_client_side():
        async def scenario():
            provider = oauth_provider(url, ChromiumHandoff())
            async with connected(url, provider) as client:
                return (await client.call_tool("whoami", {})).structured_content

        try:
            outcome["whoami"] = anyio.run(scenario)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            outcome["error"] = exc

    thread = threading.Thread(target=mcp_client_side)
    thread.start()
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop lives in this thread
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = chromium.new_page()
            page.set_default_timeout(30_000)

            def client_callback(route):
                redirects.put(route.request.url)
                route.fulfill(status=200, body="You can close this window.")

            page.route("https://claude.ai/**", client_callback)
            page.goto(authorization_urls.get(timeout=60))
            # Straight to the tenant's provider: no platform sign-in page on the way.
            page.wait_for_url(f"{idp.url}/accounts/login/**")
            page.fill("#idp_username", "noa")
            page.fill("#idp_password", "idp-pass-123")
            page.click("#idp_submit")
            page.wait_for_url(f"{live_url}/authorize**")
            assert "Echo" in page.content() or "echo" in page.content()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "sso-consent.png"), full_page=True)
            page.get_by_role("button", name="Allow").click()
            # Keep Playwright's loop turning (the route handler runs on it) until the client is
            # done.
            for _ in range(600):
                if not thread.is_alive():
                    break
                page.wait_for_timeout(200)
            chromium.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before
    if "error" in outcome:
        raise outcome["error"]
    assert outcome["whoami"]["user"] == "noa@acme.test"
    assert outcome["whoami"]["tenant"] == "acme"
    assert Membership.objects.get(user__email="noa@acme.test").role == "admin"
