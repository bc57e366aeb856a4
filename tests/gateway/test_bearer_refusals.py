"""A token that was fine once, used where or when it no longer is: each refusal is a path a
one-line mistake in the bearer check would open without any other test noticing."""

from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken

from tests.support.flow import OAuthClient, mcp_post, stored_access_token
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)


def _tokens(live_url, url, user="bob", password="bob-pass-123") -> dict:
    return OAuthClient.register(live_url).tokens(Browser(user, password), url)


def test_an_access_token_past_its_expiry_is_refused(live_url, acme):
    url = acme["connector"].url
    token = _tokens(live_url, url)["access_token"]
    assert mcp_post(url, token).status_code == 200
    AccessToken.objects.filter(pk=stored_access_token(token).pk).update(
        expires=timezone.now() - timedelta(seconds=1)
    )
    response = mcp_post(url, token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "expired" in response.json()["error_description"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_token_for_one_connector_is_refused_at_another_of_the_same_tenant(live_url, acme):
    from tenants.services import connector_create

    sibling = connector_create(tenant=acme["tenant"], kind="echo", slug="echo-two")
    token = _tokens(live_url, acme["connector"].url)["access_token"]
    assert mcp_post(acme["connector"].url, token).status_code == 200
    response = mcp_post(sibling.url, token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_disabling_the_tenant_refuses_its_members_existing_tokens(live_url, acme):
    url = acme["connector"].url
    token = _tokens(live_url, url)["access_token"]
    assert mcp_post(url, token).status_code == 200
    acme["tenant"].enabled = False
    acme["tenant"].save()
    response = mcp_post(url, token)
    assert response.status_code == 403
    assert response.json()["error"] == "connector_disabled"


def test_removed_from_one_of_two_tenants_is_refused_there_only(live_url, acme):
    from tenants.services import member_add

    # bob belongs to globex too: a membership check that asks "any tenant?" would let him in.
    member_add(tenant=acme["other"], username="bob")
    acme_token = _tokens(live_url, acme["connector"].url)["access_token"]
    globex_token = _tokens(live_url, acme["other_connector"].url)["access_token"]
    # Removed without the delete signal (which would also end the acme tokens, see
    # tests/authserver/test_token_security.py): the gateway's own membership check refuses.
    membership = acme["tenant"].memberships.filter(user__username="bob")
    membership._raw_delete(membership.db)

    response = mcp_post(acme["connector"].url, acme_token)
    assert response.status_code == 403
    assert response.json()["error"] == "not_a_member"
    assert mcp_post(acme["other_connector"].url, globex_token).status_code == 200
