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


def _test_connection(live_url, connector, admin):
    url = f"{live_url}/dashboard/connectors/{connector.pk}/"
    admin.http.get(url)
    result = admin.http.post(
        f"{url}test",
        data={"csrfmiddlewaretoken": admin.http.cookies["csrftoken"]},
        headers={"Referer": url},
        timeout=120,
    )
    assert result.status_code == 200, result.text[:500]
    return result


def test_one_run_is_one_trace_entry_labelled_as_a_test(live_url, acme):
    from events.models import Event
    from events.trace import connect_trace

    connector = acme["connector"]
    admin = Browser("alice", "alice-pass-123")
    admin.sign_in(live_url)
    _test_connection(live_url, connector, admin)

    [run] = connect_trace(connector).attempts
    assert run.test_run is not None and run.state == "passed"
    assert run.usernames == ["alice"]
    assert run.started <= run.last
    times = [s.event.created for s in run.steps]
    assert times == sorted(times) and run.steps[0].event.kind == "doctor.run"
    # The doctor's requests are inside it: its probe, discovery and registrations.
    kinds = {s.event.kind for s in run.steps}
    assert {"mcp.unauthenticated", "discovery.resource_metadata", "oauth.register"} <= kinds
    assert Event.objects.filter(kind="oauth.register", user_agent__contains="run ").count() >= 3

    page = admin.http.get(f"{live_url}/dashboard/connectors/{connector.pk}/trace").text
    assert page.count('<article class="attempt"') == 1
    assert "Test connection run" in page and "test passed" in page
    assert "stopped after" not in page and "Unidentified client" not in page

    # A second run is a second entry, and a client's own attempt stays apart from both.
    _test_connection(live_url, connector, admin)
    assert [a.state for a in connect_trace(connector).attempts] == ["passed", "passed"]


def test_a_failing_run_says_which_checks_failed(live_url, acme, settings):
    from events.trace import connect_trace

    connector = acme["connector"]
    # The connector's URL names an address nothing listens on: the doctor cannot reach it.
    settings.PUBLIC_URL = "http://127.0.0.1:9"
    admin = Browser("alice", "alice-pass-123")
    admin.sign_in(live_url)
    _test_connection(live_url, connector, admin)

    [run] = connect_trace(connector).attempts
    assert run.state == "failed"
    assert "Failed: Reachability" in run.hint
    page = admin.http.get(f"{live_url}/dashboard/connectors/{connector.pk}/trace").text
    assert "test failed" in page and "Failed: Reachability" in page
