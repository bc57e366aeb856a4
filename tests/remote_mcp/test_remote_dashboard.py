"""The connector page of a remote_mcp connector: "Test upstream", settings, the hop trace."""

import pytest

from tests.support.oauth import Browser
from tests.support.upstreams import start_upstream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def legacy():
    upstream = start_upstream("legacy_oauth", users={"bob-up": "pw-up"})
    yield upstream
    upstream.stop()


def _post(browser, url, data=None, follow=False):
    return browser.http.post(
        url,
        data={"csrfmiddlewaretoken": browser.http.cookies["csrftoken"], **(data or {})},
        headers={"Referer": url},
        timeout=120,
        follow_redirects=follow,
    )


def test_test_upstream_says_what_the_upstream_gets_wrong(live_url, acme, legacy):
    from tenants.services import connector_create

    connector = connector_create(
        tenant=acme["tenant"],
        kind="remote_mcp",
        slug="books",
        settings={"upstream_url": legacy.url, "upstream_auth": "oauth"},
    )
    page_url = f"{live_url}/dashboard/connectors/{connector.pk}/"
    admin = Browser("alice", "alice-pass-123")
    admin.sign_in(live_url)
    assert "Test upstream" in admin.http.get(page_url).text
    result = _post(admin, f"{page_url}test-upstream")
    assert result.status_code == 200, result.text[:500]
    assert legacy.url in result.text
    # The hand-rolled server's real problem: a 401 without resource_metadata.
    assert "no resource_metadata" in result.text
    assert "FAIL</span>" in result.text
    # Echo fronts no server of its own: no button, and the URL answers 404.
    echo_url = f"{live_url}/dashboard/connectors/{acme['connector'].pk}/"
    assert "Test upstream" not in admin.http.get(echo_url).text
    assert _post(admin, f"{echo_url}test-upstream").status_code == 404


def test_test_upstream_connects_only_where_the_connector_may(live_url, acme, legacy, settings):
    """The doctor checks a URL a tenant chose: by the time of the test, its name resolves to an
    address that is not public (DNS rebinding): not one request reaches it."""
    from tenants.services import connector_create

    connector = connector_create(
        tenant=acme["tenant"],
        kind="remote_mcp",
        slug="books",
        settings={"upstream_url": legacy.url.replace("127.0.0.1", "localhost")},
    )
    settings.OUTBOUND_ALLOWED_NETWORKS = ()
    page_url = f"{live_url}/dashboard/connectors/{connector.pk}/"
    admin = Browser("alice", "alice-pass-123")
    admin.sign_in(live_url)
    result = _post(admin, f"{page_url}test-upstream")
    assert result.status_code == 200, result.text[:500]
    assert "is not a public address" in result.text
    assert legacy.mcp_requests == [] and legacy.token_requests == []


def test_members_cannot_test_the_upstream(live_url, acme, legacy):
    from tenants.services import connector_create

    connector = connector_create(
        tenant=acme["tenant"],
        kind="remote_mcp",
        slug="books",
        settings={"upstream_url": legacy.url},
    )
    bob = Browser("bob", "bob-pass-123")
    bob.sign_in(live_url)
    bob.http.get(f"{live_url}/dashboard/")
    response = _post(bob, f"{live_url}/dashboard/connectors/{connector.pk}/test-upstream")
    assert response.status_code == 403
    assert legacy.mcp_requests == []


def test_admin_sets_the_allow_list_from_the_dashboard(live_url, acme, legacy):
    from tenants.models import Connector
    from tenants.services import connector_create

    connector = connector_create(
        tenant=acme["tenant"],
        kind="remote_mcp",
        slug="books",
        settings={"upstream_url": legacy.url},
    )
    url = f"{live_url}/dashboard/connectors/{connector.pk}/"
    admin = Browser("alice", "alice-pass-123")
    admin.sign_in(live_url)
    page = admin.http.get(url).text
    assert 'name="setting_allowed_tools"' in page
    form = {
        "name": "Books",
        "mode": "per_user",
        "setting_upstream_url": legacy.url,
        "setting_upstream_auth": "oauth",
        "setting_header_name": "Authorization",
        "setting_allowed_tools": "whoami, add_note",
        "setting_timeout_seconds": "20",
        "setting_list_ttl_seconds": "60",
    }
    response = _post(admin, f"{url}update", form)
    assert response.status_code in (200, 302), response.text[:500]
    connector = Connector.objects.get(pk=connector.pk)
    assert connector.settings["allowed_tools"] == "whoami, add_note"
    assert connector.settings["upstream_auth"] == "oauth"
    bad = _post(admin, f"{url}update", {**form, "setting_upstream_url": "ftp://nope"}, True)
    assert "must be an absolute" in bad.text
    assert Connector.objects.get(pk=connector.pk).settings["upstream_url"] == legacy.url


def test_no_connections_card_for_a_server_without_auth(live_url, acme, legacy):
    from tenants.services import connector_create

    open_one = connector_create(
        tenant=acme["tenant"], kind="remote_mcp", slug="open", settings={"upstream_url": legacy.url}
    )
    oauth_one = connector_create(
        tenant=acme["tenant"],
        kind="remote_mcp",
        slug="books",
        settings={"upstream_url": legacy.url, "upstream_auth": "oauth"},
    )
    admin = Browser("alice", "alice-pass-123")
    admin.sign_in(live_url)
    assert (
        "connections</h2>"
        not in admin.http.get(f"{live_url}/dashboard/connectors/{open_one.pk}/").text
    )
    assert (
        admin.http.get(f"{live_url}/dashboard/connectors/{open_one.pk}/connect").status_code == 404
    )
    assert (
        "connections</h2>"
        in admin.http.get(f"{live_url}/dashboard/connectors/{oauth_one.pk}/").text
    )
