"""Attacks on what the authorization server trusts about a client, each sent as the attacker would.

Issue 9: remembered consent and the redirect URI, the RFC 7592 management route, introspection,
CIMD redirect policy, client secrets and their cost, lookalike loopback hosts.
"""

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant

from tests.support.flow import OAuthClient, mcp_post, pkce_pair
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)

CLAUDE = "https://claude.ai/api/mcp/auth_callback"
ATTACKER = "https://attacker.example/cb"
REGISTRATION = "oauth2_provider:registration"
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


# --- 2. A registration cannot be widened after the fact ------------------------------------------


def test_rfc7592_put_cannot_widen_a_registration(live_url, acme):
    # Anonymous: a confidential client with a redirect the policy accepts.
    registered = _register(live_url, [CLAUDE], token_endpoint_auth_method="client_secret_basic")
    assert registered.status_code == 201
    body = registered.json()
    client_id, secret = body["client_id"], body["client_secret"]
    management = {"Authorization": f"Bearer {body['registration_access_token']}"}

    # Then the RFC 7592 PUT, with the registration access token it was given, switching to a
    # redirect POST /register refuses and to client_credentials.
    widened = httpx.put(
        body["registration_client_uri"],
        headers=management,
        json={
            "client_name": "Claude",
            "redirect_uris": ["http://attacker.example/cb"],
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )
    assert widened.status_code == 405, widened.text
    assert widened.json()["error"] == "invalid_request"
    app = Application.objects.get(client_id=client_id)
    assert app.redirect_uris == CLAUDE
    assert app.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE

    # And a client_credentials token for a tenant's connector.
    token = httpx.post(
        f"{live_url}/token",
        data={"grant_type": "client_credentials", "resource": acme["other_connector"].url},
        auth=(client_id, secret),
    )
    assert token.status_code in (400, 401), token.text
    assert "access_token" not in token.json()
    assert not AccessToken.objects.filter(application=app).exclude(scope=REGISTRATION).exists()

    # The registration access token reads the registration for an hour, then expires.
    assert httpx.get(body["registration_client_uri"], headers=management).status_code == 200
    registration_token = AccessToken.objects.get(application=app, scope=REGISTRATION)
    assert registration_token.expires <= timezone.now() + timedelta(hours=1)
    AccessToken.objects.filter(pk=registration_token.pk).update(expires=timezone.now())
    assert httpx.get(body["registration_client_uri"], headers=management).status_code == 401
    assert httpx.delete(body["registration_client_uri"], headers=management).status_code == 401


def test_client_credentials_never_yields_a_connector_token(live_url, acme):
    """Even a client an operator set up for client_credentials gets no token: tokens act for a
    member who consented, and there is none here."""
    app = Application.objects.create(
        name="service",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret="operator-chosen-secret",
    )

    token = httpx.post(
        f"{live_url}/token",
        data={"grant_type": "client_credentials", "resource": acme["connector"].url},
        auth=(app.client_id, "operator-chosen-secret"),
    )

    assert token.status_code in (400, 401), token.text
    assert token.json()["error"] in ("unauthorized_client", "unsupported_grant_type")
    assert not AccessToken.objects.exists()


# --- 7. Introspection is not offered to anyone --------------------------------------------------


def test_a_stranger_client_cannot_introspect_a_leaked_token(live_url, acme):
    victim = OAuthClient.register(live_url)
    tokens = victim.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)
    # The attacker registers a confidential client of its own and asks who the token is for.
    stranger = _register(live_url, [ATTACKER], token_endpoint_auth_method="client_secret_post")
    credentials = stranger.json()

    response = httpx.post(
        f"{live_url}/introspect",
        data={
            "token": tokens["access_token"],
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
        },
    )

    assert response.status_code == 404
    assert "bob" not in response.text and acme["connector"].url not in response.text
    metadata = httpx.get(f"{live_url}/.well-known/oauth-authorization-server").json()
    assert "introspection_endpoint" not in metadata
    # The token itself still works where it belongs.
    assert mcp_post(acme["connector"].url, tokens["access_token"]).status_code == 200


# --- Regression: hosts that only look like loopback ----------------------------------------------


def test_registration_with_lookalike_loopback_hosts_is_refused(live_url):
    for uri in (
        "http://localhost.evil.example/cb",
        "http://127.0.0.1.nip.io/cb",
        "http://localhost@evil.example/cb",
        "http://127.0.0.1:80@evil.example/cb",
    ):
        response = _register(live_url, [uri])

        assert response.status_code == 400, (uri, response.text)
        assert response.json()["error"] == "invalid_redirect_uri", uri
    assert not Application.objects.exists()


# --- 10. Client secrets: a keyed digest, none for public clients, failures throttled -------------


def test_secrets_are_stored_as_a_keyed_digest_and_public_clients_get_none(live_url, acme):
    confidential = _register(live_url, [CLAUDE], token_endpoint_auth_method="client_secret_post")
    public = _register(live_url, [CLAUDE]).json()

    secret = confidential.json()["client_secret"]
    stored = Application.objects.get(client_id=confidential.json()["client_id"]).client_secret
    assert stored.startswith("client_hmac_sha256$") and secret not in stored
    assert "client_secret" not in public
    assert Application.objects.get(client_id=public["client_id"]).client_secret == ""

    # Claude registers with client_secret_post: its exchange and its refreshes keep working.
    claude = OAuthClient(live_url, confidential.json()["client_id"], secret, CLAUDE)
    tokens = claude.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)
    refreshed = claude.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert mcp_post(acme["connector"].url, refreshed.json()["access_token"]).status_code == 200
    wrong = OAuthClient(live_url, claude.client_id, secret + "x", CLAUDE)
    assert wrong.refresh(refreshed.json()["refresh_token"]).json()["error"] == "invalid_client"


def test_a_secret_hashed_with_pbkdf2_still_works_and_is_rehashed_once(live_url, acme, settings):
    from django.contrib.auth.hashers import make_password

    settings.PASSWORD_HASHERS = [
        *settings.PASSWORD_HASHERS,
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    app = Application.objects.create(
        name="Claude",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=CLAUDE,
        registration_source=Application.RegistrationSource.DCR,
        client_secret=make_password("old-secret", hasher="pbkdf2_sha256"),
    )
    assert app.client_secret.startswith("pbkdf2_sha256$")
    client = OAuthClient(live_url, app.client_id, "old-secret", CLAUDE)

    tokens = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)

    app.refresh_from_db()
    assert app.client_secret.startswith("client_hmac_sha256$")
    assert client.refresh(tokens["refresh_token"]).status_code == 200


def test_a_burst_of_wrong_secrets_is_refused_without_checking_them(
    live_url, acme, settings, monkeypatch
):
    from authserver.hashers import ClientSecretHasher

    settings.CLIENT_AUTH_FAILURE_LIMIT = 3
    settings.CLIENT_AUTH_FAILURE_WINDOW = 86400  # aligned windows: never crossed mid-test
    checked = []
    verify = ClientSecretHasher.verify
    monkeypatch.setattr(
        ClientSecretHasher,
        "verify",
        lambda self, password, encoded: checked.append(password) or verify(self, password, encoded),
    )
    victim = _register(live_url, [CLAUDE], token_endpoint_auth_method="client_secret_post").json()
    bystander = _register(live_url, [CLAUDE], token_endpoint_auth_method="client_secret_post")

    def token_request(client_id, secret):
        return httpx.post(
            f"{live_url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": "whatever",
                "client_id": client_id,
                "client_secret": secret,
            },
        )

    burst = [token_request(victim["client_id"], f"guess-{n}") for n in range(6)]

    assert [r.status_code for r in burst] == [401, 401, 401, 429, 429, 429]
    assert burst[3].json()["error"] == "invalid_client"
    assert int(burst[3].headers["retry-after"]) > 0
    assert len(checked) == 3  # the refused ones cost no digest (and no lookup)
    # From this address even the right secret waits out the window...
    assert token_request(victim["client_id"], victim["client_secret"]).status_code == 429
    # ...while another client from the same address is judged on its own.
    other = token_request(bystander.json()["client_id"], bystander.json()["client_secret"])
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"
