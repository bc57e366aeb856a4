"""Sign-in by username or email, and password reset by email."""

import re

import pytest
from django.core import mail

from tenants.services import member_add, tenant_create

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at")]


@pytest.fixture
def dana(db):
    tenant = tenant_create(slug="acme", name="Acme Inc")
    return member_add(
        tenant=tenant, username="dana", password="dana-pass-123", email="Dana@Example.com"
    ).user


def test_sign_in_by_username_or_email(client, dana):
    for identifier in ("dana", "dana@example.com", "DANA@example.com"):
        response = client.post(
            "/accounts/login/", {"username": identifier, "password": "dana-pass-123"}
        )
        assert response.status_code == 302, identifier
        client.logout()
    wrong = client.post("/accounts/login/", {"username": "dana@example.com", "password": "nope"})
    assert wrong.status_code == 200 and b"Username or email" in wrong.content


def test_an_email_two_accounts_share_signs_in_neither(client, dana):
    other = member_add(
        tenant=dana.memberships.get().tenant, username="dana2", password="x-pass-1234"
    )
    other.user.email = "dana@example.com"
    other.user.save()
    response = client.post(
        "/accounts/login/", {"username": "dana@example.com", "password": "dana-pass-123"}
    )
    assert response.status_code == 200


def test_password_reset_by_email_sets_a_new_password_once(client, dana, settings):
    page = client.get("/accounts/login/")
    assert b"/accounts/password-reset/" in page.content
    sent = client.post("/accounts/password-reset/", {"email": "dana@example.com"}, follow=True)
    assert b"on its way" in sent.content
    [message] = mail.outbox
    assert message.to == ["dana@example.com"]  # add-member keeps emails lowercase
    path = re.search(r"https?://[^/\s]+(/accounts/set-password/\S+/)", message.body).group(1)
    form = client.get(path, follow=True)
    assert b"Choose your password" in form.content and b"at least" in form.content
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "dana-new-pass-456", "new_password2": "dana-new-pass-456"},
    )
    assert done.status_code == 302
    client.logout()
    assert client.login(username="dana", password="dana-new-pass-456")
    client.logout()
    again = client.get(path, follow=True)
    assert b"This link no longer works" in again.content


def test_password_reset_answers_the_same_for_an_unknown_address(client, dana, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    known = client.post("/accounts/password-reset/", {"email": "dana@example.com"}, follow=True)
    unknown = client.post("/accounts/password-reset/", {"email": "who@example.com"}, follow=True)
    assert known.content == unknown.content
    assert b"prints emails to its console" in known.content
