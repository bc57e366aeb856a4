"""Attacks on what the authorization server trusts about a client, each sent as the attacker would.

Issue 9: remembered consent and the redirect URI, the RFC 7592 management route, introspection,
CIMD redirect policy, client secrets and their cost, lookalike loopback hosts.
"""

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oauth2_provider.models import AccessToken, Application, Grant

from tests.support.flow import OAuthClient, mcp_post, pkce_pair
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)

CLAUDE = "https://claude.ai/api/mcp/auth_callback"
ATTACKER = "https://attacker.example/cb"
CODE_ONLY = {"grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}


def _register(live_url: str, redirect_uris: list[str], **extra) -> httpx.Response:
    return httpx.post(
        f"{live_url}/register",
        json={
            "client_name": "Claude",
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "none",
            **CODE_ONLY,
            **extra,
        },
    )


# --- 1. Remembered consent is bound to the redirect URI and the client's metadata ---------------


def test_consent_for_one_redirect_does_not_hand_out_codes_to_the_other(live_url, acme):
    # The attacker registers a client that says it is Claude, with a second redirect of its own.
    body = _register(live_url, [CLAUDE, ATTACKER]).json()
    client = OAuthClient(live_url, body["client_id"], redirect_uri=CLAUDE)
    connector = acme["connector"].url
    # bob connects it once, through claude.ai, and approves.
    victim = Browser("bob", "bob-pass-123")
    client.code_for(victim, connector)
    consent = next(page for page in victim.pages if 'name="pending"' in page.text)

    # Then a plain link to the attacker's redirect, opened in bob's signed-in browser.
    _, challenge = pkce_pair()
    link = client.authorize_url(challenge, resource=connector, redirect_uri=ATTACKER)
    response = victim.http.get(link)

    # No silent code: bob is asked again, on a page naming the attacker's host.
    assert "location" not in response.headers, response.headers.get("location")
    assert response.status_code == 200
    assert 'name="pending"' in response.text
    assert "Returns to</dt><dd>attacker.example" in response.text
    assert not Grant.objects.filter(redirect_uri=ATTACKER).exists()
    # And the first page already said where else codes may go, not only the self-chosen name.
    assert "attacker.example" in consent.text and "claude.ai" in consent.text


def test_consent_is_asked_again_when_the_client_changes(live_url, acme):
    client = OAuthClient.register(live_url)
    connector = acme["connector"].url
    browser = Browser("bob", "bob-pass-123")
    client.code_for(browser, connector)
    client.code_for(browser, connector)  # remembered: one consent page for two connects
    assert sum('name="pending"' in p.text for p in browser.pages) == 1

    # The client's description changes (an operator's edit, a re-fetched CIMD document).
    app = Application.objects.get(client_id=client.client_id)
    app.name = "Totally Claude"
    app.save()

    client.code_for(browser, connector)
    consents = [page for page in browser.pages if 'name="pending"' in page.text]
    assert len(consents) == 2
    assert "Totally Claude" in consents[-1].text
