"""The connector page's "Test connection" runs the doctor against the connector, live."""

import pytest

from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_tests_the_connection_and_every_step_passes(live_url, acme):
    url = f"{live_url}/dashboard/connectors/{acme['connector'].pk}/"
    admin = Browser("alice", "alice-pass-123")
    admin.sign_in(live_url)
    page = admin.http.get(url)
    assert "Test connection" in page.text
    result = admin.http.post(
        f"{url}test",
        data={"csrfmiddlewaretoken": admin.http.cookies["csrftoken"]},
        headers={"Referer": url},
        timeout=120,
    )
    assert result.status_code == 200, result.text[:500]
    assert "every client step passes" in result.text
    assert result.text.count("PASS") >= 10 and "FAIL</span>" not in result.text


def test_members_and_outsiders_cannot_run_it(live_url, acme):
    url = f"{live_url}/dashboard/connectors/{acme['connector'].pk}/test"
    for user, password, status in (("bob", "bob-pass-123", 403), ("eve", "eve-pass-123", 404)):
        browser = Browser(user, password)
        browser.sign_in(live_url)
        browser.http.get(f"{live_url}/dashboard/")
        response = browser.http.post(
            url,
            data={"csrfmiddlewaretoken": browser.http.cookies["csrftoken"]},
            headers={"Referer": url},
        )
        assert response.status_code == status
