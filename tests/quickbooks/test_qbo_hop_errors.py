"""The upstream hop's failure paths: each ends in a clear page or an OAuth error to the client,
never a 500 and never a stored half-connection."""

from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from django.contrib.auth.models import User

from tests.support.flow import OAuthClient, pkce_pair
from tests.support.oauth import Browser
from tests.support.quickbooks import call
from upstream.models import UpstreamConnection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hop(live_url, acme, qbo_emulator, settings):
    from tenants.services import connector_create

    qbo_emulator.emulator.configure(
        redirect_uris=[f"{live_url}/upstream/quickbooks/callback"], auto_approve=False
    )
    qbo_emulator.point_platform_at(settings)
    connector = connector_create(tenant=acme["tenant"], kind="quickbooks", slug="qbo")
    return {
        "connector": connector,
        "emulator": qbo_emulator,
        "client": OAuthClient.register(live_url),
    }


def browser_for(hop, **kwargs):
    return Browser("bob", "bob-pass-123", also_visits=(hop["emulator"].base_url,), **kwargs)


def authorize_url(hop):
    _, challenge = pkce_pair()
    return hop["client"].authorize_url(challenge, resource=hop["connector"].url)


def callback_of(browser) -> str:
    """The provider's redirect back to us, as the browser followed it."""
    return next(
        str(page.url) for page in browser.pages if "/upstream/quickbooks/callback" in str(page.url)
    )


def test_user_cancelling_at_intuit_sends_access_denied_to_the_client(hop, live_url):
    query = browser_for(hop, allow_provider=False).authorize(authorize_url(hop))
    assert query["error"] == "access_denied"
    assert query["state"] == "st4te"
    assert query["iss"] == live_url
    assert not UpstreamConnection.objects.exists()


def test_a_replayed_callback_is_refused_with_a_page(hop):
    browser = browser_for(hop)
    assert "code" in browser.authorize(authorize_url(hop))
    replay = browser.http.get(callback_of(browser))
    assert replay.status_code == 400
    assert "not valid" in replay.text
    assert UpstreamConnection.objects.count() == 1


def test_a_state_from_another_browser_is_refused(hop, live_url):
    # The victim consents; we stop at the redirect to Intuit and take its state.
    victim = browser_for(hop)
    victim.sign_in(live_url)
    consent = victim.http.get(authorize_url(hop))
    pending = consent.text.split('name="pending" value="')[1].split('"')[0]
    csrf = victim.http.cookies["csrftoken"]
    to_hop = victim.http.post(
        f"{live_url}/authorize",
        data={"csrfmiddlewaretoken": csrf, "pending": pending, "allow": "yes"},
    )
    assert to_hop.status_code == 302  # to the upstream app's hop, which sends to Intuit
    to_intuit = victim.http.get(urljoin(live_url, to_hop.headers["location"]))
    assert to_intuit.status_code == 302
    state = parse_qs(urlsplit(to_intuit.headers["location"]).query)["state"][0]

    attacker = Browser("alice", "alice-pass-123")
    attacker.sign_in(live_url)
    forged = attacker.http.get(
        f"{live_url}/upstream/quickbooks/callback",
        params={"code": "x", "state": state, "realmId": "1"},
    )
    assert forged.status_code == 400
    assert not UpstreamConnection.objects.exists()


def test_a_failed_code_exchange_tells_the_client_and_stores_nothing(hop, live_url):
    """Intuit refuses the code: the client is told temporarily_unavailable (never left waiting
    on a page the member may not read), and no half-connection is kept."""
    hop["emulator"].emulator.inject_fault(
        "token", status=400, body={"error": "invalid_grant"}, count=1
    )
    told = browser_for(hop).authorize(authorize_url(hop))
    assert (told["error"], told["state"], told["iss"]) == (
        "temporarily_unavailable",
        "st4te",
        live_url,
    )
    assert "QuickBooks did not accept the sign-in" in told["error_description"]
    assert not UpstreamConnection.objects.exists()


def test_a_connection_that_needs_reauth_sends_the_user_through_intuit_again(hop):
    first = browser_for(hop)
    assert "code" in first.authorize(authorize_url(hop))
    UpstreamConnection.objects.update(status="needs_reauth", last_error="invalid_grant")
    again = browser_for(hop)
    assert "code" in again.authorize(authorize_url(hop))
    assert any(str(p.url).startswith(hop["emulator"].base_url) for p in again.pages)
    connection = UpstreamConnection.objects.get()
    assert connection.status == "active" and connection.user == User.objects.get(username="bob")


def test_an_api_timeout_is_a_tool_error(qbo_connector, settings):
    settings.QUICKBOOKS_TIMEOUT_SECONDS = 0.3
    qbo_connector["emulator"].inject_fault("companyinfo", kind="slow", delay=1.0, count=5)
    result = call(qbo_connector)
    assert result["isError"]
    assert "unavailable" in result["content"][0]["text"].lower()
    assert UpstreamConnection.objects.get().status == "active"


def test_unknown_callback_without_state_is_a_page(live_url, acme):
    browser = Browser("bob", "bob-pass-123")
    browser.sign_in(live_url)
    assert browser.http.get(f"{live_url}/upstream/quickbooks/callback").status_code == 400
    assert httpx.get(f"{live_url}/upstream/quickbooks/callback").status_code == 302  # sign in


def _consent(browser, hop, live_url) -> str:
    """Sign in, consent, and return where /authorize sends the browser next (the hop view)."""
    browser.sign_in(live_url)
    consent = browser.http.get(authorize_url(hop))
    pending = consent.text.split('name="pending" value="')[1].split('"')[0]
    answer = browser.http.post(
        f"{live_url}/authorize",
        data={
            "csrfmiddlewaretoken": browser.http.cookies["csrftoken"],
            "pending": pending,
            "allow": "yes",
        },
    )
    assert answer.status_code == 302
    return urljoin(live_url, answer.headers["location"])


def test_the_callback_hands_back_through_the_resume_url_once(hop, live_url):
    browser = browser_for(hop)
    assert "code" in browser.authorize(authorize_url(hop))
    callback = next(p for p in browser.pages if "/upstream/quickbooks/callback" in str(p.url))
    assert callback.status_code == 302
    resume = urljoin(live_url, callback.headers["location"])
    assert urlsplit(resume).path.startswith("/authorize/resume/")
    replay = browser.http.get(resume)
    assert replay.status_code == 400
    assert "cannot be resumed" in replay.text


def test_a_resume_before_the_hop_has_finished_is_refused(hop, live_url):
    browser = browser_for(hop)
    hop_url = _consent(browser, hop, live_url)
    assert urlsplit(hop_url).path.startswith("/upstream/hop/")
    authorization_id = hop_url.rsplit("/", 1)[1]
    resume = f"{live_url}/authorize/resume/{authorization_id}"
    early = browser.http.get(resume)
    assert early.status_code == 400
    assert "cannot be resumed" in early.text
    assert not UpstreamConnection.objects.exists()

    # The refused resume did not spend the authorization: the hop still finishes it, in this
    # browser only.
    assert "code" in browser.authorize(hop_url)
    assert str(browser.pages[-1].url) == resume
    other = Browser("alice", "alice-pass-123")
    other.sign_in(live_url)
    assert other.http.get(resume).status_code == 400
