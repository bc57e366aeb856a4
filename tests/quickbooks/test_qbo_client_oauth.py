"""The OAuth client against the live emulator: discovery, code exchange, refresh, revoke, errors."""

from __future__ import annotations

import socket
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectors.quickbooks import client as qbo
from connectors.quickbooks.transport import shared_ssl_context

DAY = 24 * 3600

TLS = shared_ssl_context()  # one CA bundle load for the whole module


def connect_through_browser(qbo_emulator, oauth, **url_options) -> tuple[str, str]:
    """Follow the authorization URL (auto-approved) like a browser; returns (code, realmId)."""
    url = oauth.authorization_url(
        redirect_uri=qbo_emulator.redirect_uri, state="s-1", **url_options
    )
    response = httpx.get(url + "&auto_approve=1", verify=TLS)
    params = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    assert params["state"] == "s-1"
    return params["code"], params["realmId"]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- discovery ----------------------------------------------------------------------------


def test_endpoints_come_from_the_discovery_document_and_are_cached(qbo_emulator):
    first = qbo.load_endpoints(qbo_emulator.base_url)
    second = qbo.load_endpoints(qbo_emulator.base_url)

    assert first is second
    assert first.token_endpoint == f"{qbo_emulator.base_url}/oauth2/v1/tokens/bearer"
    assert first.revocation_endpoint == f"{qbo_emulator.base_url}/v2/oauth2/tokens/revoke"
    assert first.api_base == f"{qbo_emulator.base_url}/v3"
    assert len(qbo_emulator.emulator.recent_requests("discovery")) == 1
    qbo.load_endpoints(qbo_emulator.base_url, max_age=0)
    assert len(qbo_emulator.emulator.recent_requests("discovery")) == 2


def test_known_environments_point_at_intuit():
    from connectors.quickbooks.oauth import discovery_location

    assert discovery_location("production") == (
        "https://developer.intuit.com/.well-known/openid_configuration",
        "https://quickbooks.api.intuit.com/v3",
    )
    assert discovery_location("sandbox")[1] == "https://sandbox-quickbooks.api.intuit.com/v3"
    with pytest.raises(ValueError):
        discovery_location("staging")


def test_discovery_failure_is_provider_unavailable(qbo_emulator):
    qbo_emulator.emulator.inject_fault("discovery", status=503)

    with pytest.raises(qbo.ProviderUnavailable) as failure:
        qbo.load_endpoints(qbo_emulator.base_url)

    assert failure.value.status_code == 503
    assert failure.value.intuit_tid


def test_authorization_url_carries_the_request(qbo_oauth, qbo_emulator):
    url = qbo_oauth.authorization_url(
        redirect_uri=qbo_emulator.redirect_uri,
        state="xyz",
        scopes=(qbo.ACCOUNTING_SCOPE, *qbo.OPENID_SCOPES),
    )

    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}" == qbo_oauth.endpoints.authorization_endpoint
    )
    assert params == {
        "client_id": qbo_emulator.client_id,
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting openid profile email",
        "redirect_uri": qbo_emulator.redirect_uri,
        "state": "xyz",
    }


# --- exchange, refresh, revoke ------------------------------------------------------------


def test_exchange_code_returns_a_token_set(qbo_oauth, qbo_emulator):
    code, realm_id = connect_through_browser(
        qbo_emulator, qbo_oauth, scopes=(qbo.ACCOUNTING_SCOPE, "openid")
    )

    tokens = qbo_oauth.exchange_code(code, qbo_emulator.redirect_uri)

    assert tokens.access_token and tokens.refresh_token and tokens.id_token
    assert tokens.expires_in == 3600
    assert tokens.refresh_expires_in == 100 * DAY
    assert tokens.expires_at - tokens.obtained_at == timedelta(hours=1)
    assert tokens.refresh_expires_at - tokens.obtained_at == timedelta(days=100)
    assert realm_id in qbo_emulator.emulator.companies


def test_token_values_never_show_in_repr_or_errors(qbo_oauth, qbo_emulator):
    code, _ = connect_through_browser(qbo_emulator, qbo_oauth)
    tokens = qbo_oauth.exchange_code(code, qbo_emulator.redirect_uri)
    qbo_emulator.emulator.disconnect(next(iter(qbo_emulator.emulator.companies)))

    with pytest.raises(qbo.InvalidGrant) as refused:
        qbo_oauth.refresh(tokens.refresh_token)

    for text in (repr(tokens), str(tokens), str(refused.value), repr(qbo_oauth)):
        assert tokens.access_token not in text
        assert tokens.refresh_token not in text
        assert qbo_emulator.client_secret not in text
    assert "expires_in=3600" in repr(tokens)


def test_a_used_code_is_invalid_grant(qbo_oauth, qbo_emulator):
    code, _ = connect_through_browser(qbo_emulator, qbo_oauth)
    qbo_oauth.exchange_code(code, qbo_emulator.redirect_uri)

    with pytest.raises(qbo.InvalidGrant) as refused:
        qbo_oauth.exchange_code(code, qbo_emulator.redirect_uri)

    assert refused.value.status_code == 400
    assert refused.value.error == "invalid_grant"
    assert refused.value.intuit_tid


def test_wrong_client_secret_is_invalid_client(qbo_endpoints, qbo_emulator):
    oauth = qbo.IntuitOAuthClient(
        qbo_endpoints, client_id=qbo_emulator.client_id, client_secret="not-the-secret"
    )

    with pytest.raises(qbo.InvalidClient) as refused:
        oauth.refresh("anything")

    assert refused.value.status_code == 401


def test_refresh_follows_the_rotation_rule(qbo_oauth, qbo_emulator):
    start = qbo_emulator.connect()
    same = qbo_oauth.refresh(start["refresh_token"])
    qbo_emulator.emulator.clock.advance(DAY + 1)

    rotated = qbo_oauth.refresh(same.refresh_token)

    assert same.refresh_token == start["refresh_token"]
    assert rotated.refresh_token != start["refresh_token"]
    with pytest.raises(qbo.InvalidGrant):
        qbo_oauth.refresh(start["refresh_token"])


def test_revoke_ends_the_connection(qbo_oauth, qbo_emulator):
    tokens = qbo_emulator.connect()

    qbo_oauth.revoke(tokens["refresh_token"])

    with pytest.raises(qbo.InvalidGrant):
        qbo_oauth.refresh(tokens["refresh_token"])


def test_userinfo(qbo_oauth, qbo_emulator):
    tokens = qbo_emulator.connect(scopes=(qbo.ACCOUNTING_SCOPE, "openid", "email"))

    claims = qbo_oauth.userinfo(tokens["access_token"])

    assert claims["email"] == "sandbox.admin@example.com" and claims["sub"]
    with pytest.raises(qbo.Unauthorized):
        qbo_oauth.userinfo("not-a-token")


# --- transient failures -------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_token_endpoint_5xx_is_provider_unavailable(qbo_oauth, qbo_emulator, status):
    tokens = qbo_emulator.connect()
    qbo_emulator.emulator.inject_fault("token", status=status)

    with pytest.raises(qbo.ProviderUnavailable) as failure:
        qbo_oauth.refresh(tokens["refresh_token"])

    assert failure.value.status_code == status
    assert failure.value.intuit_tid


def test_token_endpoint_429_is_throttled(qbo_oauth, qbo_emulator):
    qbo_emulator.emulator.inject_fault("token", status=429, body={"error": "throttled"})

    with pytest.raises(qbo.Throttled) as failure:
        qbo_oauth.refresh("whatever")

    assert failure.value.retry_after == 60


def test_a_lost_refresh_answer_is_not_retried_blindly(qbo_oauth, qbo_emulator):
    """The refresh happened at Intuit but its answer was lost: report it, do not resend it."""
    tokens = qbo_emulator.connect()
    qbo_emulator.emulator.clock.advance(DAY + 1)  # this refresh will rotate
    qbo_emulator.emulator.inject_fault("token", "drop_after")

    with pytest.raises(qbo.ProviderUnavailable):
        qbo_oauth.refresh(tokens["refresh_token"])

    counters = qbo_emulator.emulator.counters_snapshot()
    assert counters["token.refresh"] == 1
    assert counters["token.refresh.rotated"] == 1
    # Exactly the production pitfall: the rotated value never arrived, the old one is dead.
    with pytest.raises(qbo.InvalidGrant):
        qbo_oauth.refresh(tokens["refresh_token"])


def test_slow_token_endpoint_times_out(qbo_endpoints, qbo_emulator):
    oauth = qbo.IntuitOAuthClient(
        qbo_endpoints,
        client_id=qbo_emulator.client_id,
        client_secret=qbo_emulator.client_secret,
        timeout=httpx.Timeout(0.2),
    )
    qbo_emulator.emulator.inject_fault("token", "slow", delay=0.6)

    with pytest.raises(qbo.ProviderUnavailable, match="timed out"):
        oauth.refresh("whatever")


def test_unreachable_intuit_is_provider_unavailable_after_connect_retries(qbo_emulator):
    endpoints = qbo.IntuitEndpoints(
        issuer="x",
        authorization_endpoint="x",
        token_endpoint=closed_port_url() + "/token",
        revocation_endpoint=closed_port_url() + "/revoke",
        userinfo_endpoint="",
        jwks_uri="",
        api_base="",
    )
    oauth = qbo.IntuitOAuthClient(
        endpoints, client_id="id", client_secret="secret", connect_retries=2, retry_backoff=0
    )

    with pytest.raises(qbo.ProviderUnavailable, match="network error"):
        oauth.refresh("whatever")
    with pytest.raises(qbo.ProviderUnavailable):
        oauth.revoke("whatever")


# --- async flavour ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_exchange_refresh_and_revoke(qbo_oauth, qbo_emulator):
    code, _ = connect_through_browser(qbo_emulator, qbo_oauth)

    tokens = await qbo_oauth.exchange_code_async(code, qbo_emulator.redirect_uri)
    refreshed = await qbo_oauth.refresh_async(tokens.refresh_token)
    await qbo_oauth.revoke_async(refreshed.access_token)

    assert refreshed.refresh_token == tokens.refresh_token
    with pytest.raises(qbo.InvalidGrant):
        await qbo_oauth.refresh_async(tokens.refresh_token)
