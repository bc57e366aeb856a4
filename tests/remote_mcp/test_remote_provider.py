"""The remote_mcp provider (what the platform's hop and refresher call) against real upstreams."""

import pytest

from connectors.base import UpstreamReauthRequired, UpstreamUnavailable
from connectors.remote_mcp.provider import RemoteMCPProvider
from tests.remote_mcp.test_remote_oauth_client import _whoami
from tests.support.upstreams import start_upstream, upstream_sign_in

REDIRECT = "https://platform.example/upstream/remote_mcp/callback"


@pytest.fixture
def legacy():
    upstream = start_upstream("legacy_oauth", users={"ann": "pw-ann"})
    yield upstream
    upstream.stop()


def test_hop_round_trip_and_refresh(legacy):
    provider = RemoteMCPProvider({"upstream_url": legacy.url})
    start = provider.authorization_url(state="state-a", redirect_uri=REDIRECT)
    answer = upstream_sign_in(start.url, "ann", "pw-ann")
    tokens = provider.exchange_code(params=answer, redirect_uri=REDIRECT, flow=start.flow)
    assert tokens.external_account_id == legacy.base.removeprefix("http://")
    assert _whoami(legacy, tokens.access_token)["content"][0]["text"] == "ann"
    # The refresher builds a provider without settings: the stored grant is enough.
    refreshed = RemoteMCPProvider().refresh(tokens.refresh_token)
    assert _whoami(legacy, refreshed.access_token)["content"][0]["text"] == "ann"
    legacy.revoke_all()
    with pytest.raises(UpstreamReauthRequired):
        RemoteMCPProvider().refresh(refreshed.refresh_token)


def test_answer_needs_its_flow_and_the_right_issuer(legacy):
    provider = RemoteMCPProvider({"upstream_url": legacy.url})
    start = provider.authorization_url(state="state-b", redirect_uri=REDIRECT)
    assert start.flow["verifier"] not in start.url
    answer = upstream_sign_in(start.url, "ann", "pw-ann")
    with pytest.raises(UpstreamReauthRequired, match="issuer"):
        provider.exchange_code(
            params={**answer, "iss": "https://evil.example"}, redirect_uri=REDIRECT, flow=start.flow
        )
    with pytest.raises(UpstreamReauthRequired, match="not started here"):
        provider.exchange_code(params=answer, redirect_uri=REDIRECT)


def test_admin_entered_client_credentials_are_used(legacy):
    legacy.clients["admin-app"] = {"redirect_uris": [REDIRECT], "client_secret": "s3cret"}
    provider = RemoteMCPProvider(
        {
            "upstream_url": legacy.url,
            "oauth_client_id": "admin-app",
            "oauth_client_secret": "s3cret",
        }
    )
    start = provider.authorization_url(state="state-c", redirect_uri=REDIRECT)
    assert "client_id=admin-app" in start.url
    answer = upstream_sign_in(start.url, "ann", "pw-ann")
    tokens = provider.exchange_code(params=answer, redirect_uri=REDIRECT, flow=start.flow)
    assert _whoami(legacy, tokens.access_token)["content"][0]["text"] == "ann"
    assert len(legacy.clients) == 1  # nothing was registered


def test_header_credentials_need_no_refresh():
    provider = RemoteMCPProvider(
        {"upstream_url": "https://notes.example/mcp", "header_name": "X-API-Key"}
    )
    tokens = provider.accept_credential(" key-1 ")
    assert tokens.access_token == "key-1"
    again = RemoteMCPProvider().refresh(tokens.refresh_token)
    assert again.access_token == "key-1"
    RemoteMCPProvider().revoke(tokens.refresh_token)  # nothing to revoke upstream
    with pytest.raises(UpstreamReauthRequired):
        provider.accept_credential("a\nb")


def test_discovery_never_fetches_from_a_private_address():
    """The upstream's metadata names an authorization server at the cloud metadata address:
    discovery refuses to connect there (and says so), whatever the upstream claims."""
    upstream = start_upstream(
        "modern_oauth", authorization_server="http://169.254.169.254/latest/meta-data"
    )
    try:
        provider = RemoteMCPProvider({"upstream_url": upstream.url})
        with pytest.raises(UpstreamUnavailable) as refused:
            provider.authorization_url(state="state-d", redirect_uri=REDIRECT)
        assert "refused by the platform: 169.254.169.254 is not a public address" in str(
            refused.value
        )
    finally:
        upstream.stop()
