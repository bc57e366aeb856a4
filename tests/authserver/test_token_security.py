"""Negative cases of the authorization server, each with the exact error a client sees."""

import threading
from urllib.parse import urlsplit

import httpx
import pytest
from oauth2_provider.models import Grant, RefreshToken

from authserver.models import Consent
from tests.support.flow import OAuthClient, mcp_post, pkce_pair
from tests.support.oauth import Browser
from tests.support.sql import postgres_only

pytestmark = pytest.mark.django_db(transaction=True)


def bob():
    return Browser("bob", "bob-pass-123")


def test_token_of_one_tenant_is_refused_at_another_tenants_connector(live_url, acme):
    client = OAuthClient.register(live_url)
    tokens = client.tokens(bob(), acme["connector"].url)
    assert mcp_post(acme["connector"].url, tokens["access_token"]).status_code == 200

    response = mcp_post(acme["other_connector"].url, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "another connector" in response.json()["error_description"]


def test_missing_pkce_is_refused_with_a_redirect_to_the_client(live_url, acme):
    client = OAuthClient.register(live_url)
    query = bob().authorize(client.authorize_url(None, resource=acme["connector"].url))
    assert query["error"] == "invalid_request"
    assert query["state"] == "st4te"
    assert "code" not in query


def test_plain_pkce_is_refused_before_consent(live_url, acme):
    client = OAuthClient.register(live_url)
    browser = bob()
    verifier, _ = pkce_pair()
    query = browser.authorize(
        client.authorize_url(verifier, resource=acme["connector"].url, method="plain")
    )
    assert query["error"] == "invalid_request"
    assert "S256" in query["error_description"]
    assert not any('name="pending"' in page.text for page in browser.pages)


def test_wrong_code_verifier_is_invalid_grant(live_url, acme):
    client = OAuthClient.register(live_url)
    code, _verifier = client.code_for(bob(), acme["connector"].url)
    other_verifier, _ = pkce_pair()
    response = client.exchange(code, other_verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_code_replay_fails_and_revokes_the_tokens_of_the_first_use(live_url, acme):
    client = OAuthClient.register(live_url)
    url = acme["connector"].url
    code, verifier = client.code_for(bob(), url)
    first = client.exchange(code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert mcp_post(url, tokens["access_token"]).status_code == 200

    replay = client.exchange(code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert mcp_post(url, tokens["access_token"]).status_code == 401
    assert client.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(live_url, acme):
    client = OAuthClient.register(live_url)
    _, challenge = pkce_pair()
    browser = bob()
    url = client.authorize_url(
        challenge, resource=acme["connector"].url, redirect_uri="https://evil.example/cb"
    )
    with pytest.raises(AssertionError, match="unexpected page 400"):
        browser.authorize(url)
    assert "redirect" in browser.pages[-1].text.lower()
    locations = [urlsplit(r.headers.get("location", "")).netloc for r in browser.pages]
    assert "evil.example" not in locations


def test_unknown_resource_is_invalid_target(live_url, acme):
    client = OAuthClient.register(live_url)
    _, challenge = pkce_pair()
    query = bob().authorize(client.authorize_url(challenge, resource=f"{live_url}/t/acme/nope/mcp"))
    assert query["error"] == "invalid_target"


def test_refresh_rotates_and_a_replay_after_the_grace_window_revokes_the_chain(
    live_url, acme, settings
):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0}
    client = OAuthClient.register(live_url)
    url = acme["connector"].url
    tokens = client.tokens(bob(), url)
    rotated = client.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert mcp_post(url, new["access_token"]).status_code == 200

    replay = client.refresh(tokens["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # Reuse detection: the whole chain is dead now, including the newest pair.
    assert mcp_post(url, new["access_token"]).status_code == 401
    assert client.refresh(new["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_replay_inside_the_grace_window_gets_the_same_new_tokens(live_url, acme):
    client = OAuthClient.register(live_url)
    tokens = client.tokens(bob(), acme["connector"].url)
    first = client.refresh(tokens["refresh_token"]).json()
    second = client.refresh(tokens["refresh_token"])
    assert second.status_code == 200
    assert second.json()["access_token"] == first["access_token"]
    assert second.json()["refresh_token"] == first["refresh_token"]


@postgres_only("the row-lock race only exists on PostgreSQL (SQLite serialises writers)")
def test_two_simultaneous_refreshes_of_one_token_both_succeed(live_url, acme):
    client = OAuthClient.register(live_url)
    url = acme["connector"].url
    for _ in range(5):
        tokens = client.tokens(bob(), url)
        results = _refresh_twice_at_once(client, tokens["refresh_token"])
        assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
        bodies = [r.json() for r in results]
        assert bodies[0]["access_token"] == bodies[1]["access_token"]
        assert mcp_post(url, bodies[0]["access_token"]).status_code == 200


def _refresh_twice_at_once(client, refresh_token):
    barrier = threading.Barrier(2)
    results = []

    def refresh():
        barrier.wait()
        results.append(client.refresh(refresh_token))

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_revoked_token_is_refused_at_once(live_url, acme):
    client = OAuthClient.register(live_url)
    url = acme["connector"].url
    tokens = client.tokens(bob(), url)
    response = httpx.post(
        f"{live_url}/revoke",
        data={"token": tokens["access_token"], "client_id": client.client_id},
    )
    assert response.status_code == 200
    refused = mcp_post(url, tokens["access_token"])
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"


def test_non_member_gets_a_clear_page_and_no_code(live_url, acme):
    client = OAuthClient.register(live_url)
    _, challenge = pkce_pair()
    browser = Browser("eve", "eve-pass-123")
    with pytest.raises(AssertionError, match="unexpected page 403"):
        browser.authorize(client.authorize_url(challenge, resource=acme["connector"].url))
    assert "not a member of Acme Inc" in browser.pages[-1].text
    assert not Grant.objects.exists()


def test_member_removed_after_connecting_is_refused(live_url, acme):
    client = OAuthClient.register(live_url)
    url = acme["connector"].url
    tokens = client.tokens(bob(), url)
    membership = acme["tenant"].memberships.filter(user__username="bob")
    # The gateway checks membership on every request, whatever removed it (here a delete
    # that runs no signals, as raw SQL would)...
    membership._raw_delete(membership.db)
    response = mcp_post(url, tokens["access_token"])
    assert response.status_code == 403
    assert response.json()["error"] == "not_a_member"


def test_removing_a_member_ends_their_tokens(live_url, acme):
    client = OAuthClient.register(live_url)
    url = acme["connector"].url
    tokens = client.tokens(bob(), url)
    # ...and ending a membership the ordinary way (admin, service, a user's deletion) ends the
    # member's tokens and consents for the tenant's connectors at once.
    acme["tenant"].memberships.filter(user__username="bob").delete()
    response = mcp_post(url, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert client.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert not Consent.objects.filter(user__username="bob").exists()


def test_disabled_connector_answers_a_clear_json_error(live_url, acme):
    client = OAuthClient.register(live_url)
    url = acme["connector"].url
    tokens = client.tokens(bob(), url)
    acme["connector"].enabled = False
    acme["connector"].save()
    response = mcp_post(url, tokens["access_token"])
    assert response.status_code == 403
    assert response.json()["error"] == "connector_disabled"


def test_consent_is_remembered_per_client_and_connector_and_can_be_revoked(live_url, acme):
    client = OAuthClient.register(live_url)
    url = acme["connector"].url
    browser = bob()
    client.tokens(browser, url)
    assert sum('name="pending"' in p.text for p in browser.pages) == 1
    client.tokens(browser, url)  # same browser session, same client: no consent page
    assert sum('name="pending"' in p.text for p in browser.pages) == 1

    Consent.objects.filter(user__username="bob").delete()
    client.tokens(browser, url)
    assert sum('name="pending"' in p.text for p in browser.pages) == 2


def test_denied_consent_redirects_access_denied_with_iss(live_url, acme):
    client = OAuthClient.register(live_url)
    _, challenge = pkce_pair()
    browser = Browser("bob", "bob-pass-123", allow=False)
    query = browser.authorize(client.authorize_url(challenge, resource=acme["connector"].url))
    assert query["error"] == "access_denied"
    assert query["state"] == "st4te"
    assert query["iss"] == live_url
    assert not RefreshToken.objects.exists()


def test_consent_page_cannot_be_framed(live_url, acme):
    client = OAuthClient.register(live_url)
    _, challenge = pkce_pair()
    browser = Browser("bob", "bob-pass-123", allow=False)
    browser.authorize(client.authorize_url(challenge, resource=acme["connector"].url))
    consent = next(page for page in browser.pages if 'name="pending"' in page.text)
    assert consent.headers["x-frame-options"] == "DENY"
    assert consent.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert "Test client" in consent.text and "claude.ai" in consent.text
    assert "Echo of Acme Inc" in consent.text
