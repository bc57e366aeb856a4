"""The platform's own error pages: styled HTML for people, JSON under /api/, no traceback in the
log for a refused request; stale forms kept across an ended session or a stale CSRF token."""

import logging

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from tenants.models import Connector
from tests.support.world import PASSWORDS

pytestmark = pytest.mark.filterwarnings("ignore:No directory at")


def _is_our_page(response) -> bool:
    text = response.content.decode()
    return "<main>" in text and "DEBUG" not in text and "Django" not in text


def test_404_is_our_page_and_json_under_api(client, world):
    page = client.get("/dashboard/no-such-page")
    assert page.status_code == 404 and _is_our_page(page)
    assert b"Page not found" in page.content
    api = client.get("/api/v1/no-such-thing/")
    assert api.status_code == 404 and api.json() == {"detail": "Not found."}


def test_403_for_a_member_on_an_admin_url_is_our_page_without_traceback(client, world, caplog):
    client.login(username="bob", password=PASSWORDS["bob"])
    with caplog.at_level(logging.WARNING, logger="django.request"):
        page = client.get("/dashboard/t/acme/members/")
    assert page.status_code == 403 and _is_our_page(page)
    assert b"You cannot open this page" in page.content
    handler = logging.getLogger().handlers[0]
    for record in caplog.records:
        for f in handler.filters:
            f.filter(record)
        assert record.exc_info is None


def test_405_on_reloading_a_button_target_is_our_page(client, world):
    client.login(username="alice", password=PASSWORDS["alice"])
    page = client.get(f"/dashboard/connectors/{world.echo.pk}/test")
    assert page.status_code == 405 and _is_our_page(page)
    assert b"takes a form, not a visit" in page.content
    api = client.put("/api/v1/me/")
    assert api.status_code == 405 and "detail" in api.json()


def test_a_stale_csrf_token_offers_the_same_submission_again(world):
    client = Client(enforce_csrf_checks=True)
    client.login(username="alice", password=PASSWORDS["alice"])
    client.cookies["csrftoken"] = "a" * 32
    form = {"name": "Renamed after a long lunch", "mode": "per_user", "setting_style": "plain"}
    stale = client.post(
        f"/dashboard/connectors/{world.echo.pk}/update", {**form, "csrfmiddlewaretoken": "b" * 32}
    )
    assert stale.status_code == 403 and _is_our_page(stale)
    assert (
        b"Your session expired" in stale.content and b"Renamed after a long lunch" in stale.content
    )
    assert b"DEBUG" not in stale.content
    token = stale.cookies["csrftoken"].value if "csrftoken" in stale.cookies else None
    assert token
    again = client.post(
        f"/dashboard/connectors/{world.echo.pk}/update", {**form, "csrfmiddlewaretoken": token}
    )
    assert again.status_code == 302, again.content
    assert Connector.objects.get(pk=world.echo.pk).name == "Renamed after a long lunch"


def test_a_form_sent_after_the_session_ended_is_kept_through_sign_in(client, world):
    client.login(username="alice", password=PASSWORDS["alice"])
    client.logout()
    sent = client.post(
        f"/dashboard/connectors/{world.echo.pk}/update",
        {"name": "Kept across sign-in", "mode": "per_user", "setting_style": "plain"},
    )
    assert sent.status_code == 302 and sent["Location"].startswith("/accounts/login/")
    assert "resubmit" in sent["Location"]
    signed_in = client.post(
        sent["Location"], {"username": "alice", "password": PASSWORDS["alice"]}, follow=True
    )
    assert b"Send your changes again" in signed_in.content
    assert b"Kept across sign-in" in signed_in.content
    assert Connector.objects.get(pk=world.echo.pk).name != "Kept across sign-in"
    client.post(
        f"/dashboard/connectors/{world.echo.pk}/update",
        {"name": "Kept across sign-in", "mode": "per_user", "setting_style": "plain"},
    )
    assert Connector.objects.get(pk=world.echo.pk).name == "Kept across sign-in"
    # Kept once: the page does not offer it again.
    assert client.get("/accounts/resubmit/").status_code == 302


def test_sign_out_lands_on_our_signed_out_page(client, world):
    client.login(username="alice", password=PASSWORDS["alice"])
    page = client.post("/accounts/logout/")
    assert page.status_code == 200 and _is_our_page(page)
    assert b"You are signed out" in page.content and b"/accounts/login/" in page.content
    assert b"/admin/" not in page.content


def test_favicon(client, world):
    assert b'rel="icon"' in client.get("/accounts/login/").content
    icon = client.get("/favicon.ico")
    assert icon.status_code == 301 and icon["Location"] == "/static/dashboard/favicon.svg"
    assert "<svg" in open(finders.find("dashboard/favicon.svg")).read()
