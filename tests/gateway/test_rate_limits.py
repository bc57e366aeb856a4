"""Gateway rate limits per tenant, OAuth client and member: 429 with Retry-After and a JSON-RPC
error body, counted in config.limits (Redis when configured; see tests/deploy for two processes)."""

import pytest

from events.models import Event
from tests.support.flow import OAuthClient, mcp_post
from tests.support.live import free_port
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)


def _token(live_url, url, user="bob"):
    client = OAuthClient.register(live_url)
    return client.tokens(Browser(user, f"{user}-pass-123"), url)["access_token"]


def _assert_rate_limited(response, what, window):
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32029
    assert f"for this {what}" in body["error"]["message"]
    assert body["error"]["data"] == {"limit": what, "retry_after": retry_after}


def test_a_member_over_the_limit_is_answered_429_and_others_are_not(live_url, acme, settings):
    settings.GATEWAY_RATE_LIMIT_PER_MEMBER = 3
    settings.GATEWAY_RATE_LIMIT_WINDOW = 600
    url = acme["connector"].url
    bob, alice = _token(live_url, url, "bob"), _token(live_url, url, "alice")

    assert [mcp_post(url, bob).status_code for _ in range(3)] == [200, 200, 200]
    _assert_rate_limited(mcp_post(url, bob), "member", 600)
    _assert_rate_limited(mcp_post(url, bob), "member", 600)  # refusals do not reopen it
    assert mcp_post(url, alice).status_code == 200  # her own count

    refusals = Event.objects.filter(kind="mcp.rate_limited", connector=acme["connector"])
    assert refusals.count() == 2
    assert {e.status_code for e in refusals} == {429}


def test_the_tenant_limit_counts_every_member_and_client_together(live_url, acme, settings):
    settings.GATEWAY_RATE_LIMIT_PER_TENANT = 4
    url = acme["connector"].url
    bob, alice = _token(live_url, url, "bob"), _token(live_url, url, "alice")

    answers = [mcp_post(url, token).status_code for token in (bob, alice, bob, alice)]
    assert answers == [200] * 4
    _assert_rate_limited(mcp_post(url, alice), "tenant", 60)
    # Another tenant is not held back by acme's traffic.
    eve = _token(live_url, acme["other_connector"].url, "eve")
    assert mcp_post(acme["other_connector"].url, eve).status_code == 200


def test_the_client_limit_holds_one_registration_across_its_members(live_url, acme, settings):
    settings.GATEWAY_RATE_LIMIT_PER_CLIENT = 2
    url = acme["connector"].url
    client = OAuthClient.register(live_url)
    bob = client.tokens(Browser("bob", "bob-pass-123"), url)["access_token"]
    alice = client.tokens(Browser("alice", "alice-pass-123"), url)["access_token"]

    assert [mcp_post(url, t).status_code for t in (bob, alice)] == [200, 200]
    _assert_rate_limited(mcp_post(url, bob), "client", 60)
    assert mcp_post(url, _token(live_url, url, "bob")).status_code == 200  # another client


def test_without_limits_nothing_is_refused(live_url, acme):
    url = acme["connector"].url
    bob = _token(live_url, url)
    assert {mcp_post(url, bob).status_code for _ in range(30)} == {200}


def test_calls_go_through_while_redis_cannot_count_them(live_url, acme, settings):
    url = acme["connector"].url
    bob = _token(live_url, url)
    settings.GATEWAY_RATE_LIMIT_PER_MEMBER = 1
    # Redis gone (nothing listens there): the limits cannot be counted, the calls still work.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    assert [mcp_post(url, bob).status_code for _ in range(3)] == [200, 200, 200]
