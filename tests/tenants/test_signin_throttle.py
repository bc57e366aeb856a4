"""Password guessing: failed sign-ins are limited per account and per client address on every
sign-in page (the consent flow signs in through /accounts/login/), and passwords must be more
than long."""

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from tenants.services import member_add, tenant_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_users():
    tenant = tenant_create(slug="acme", name="Acme Inc")
    member_add(tenant=tenant, username="bob", password="bob-pass-123")
    member_add(tenant=tenant, username="carol", password="carol-pass-123")
    admin = member_add(tenant=tenant, username="root", password="root-pass-123", role="admin")
    admin.user.is_staff = True
    admin.user.save()
    return tenant


def _sign_in(client: Client, path: str, username: str, password: str, address: str):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_the_right_password_after_40_wrong_ones_is_refused(acme_users, path):
    client = Client()
    username = "root" if path.startswith("/admin") else "bob"
    for n in range(40):
        # Each guess from another address: the account's own limit still holds.
        response = _sign_in(client, path, username, f"guess-{n}", f"198.51.100.{n}")
        assert response.status_code == 200
    response = _sign_in(client, path, username, f"{username}-pass-123", "203.0.113.9")
    assert response.status_code == 200, "signed in after 40 wrong passwords"
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_one_address_guessing_many_accounts_is_refused(acme_users, settings):
    client = Client()
    for n in range(settings.SIGNIN_ADDRESS_LIMIT):
        _sign_in(client, "/accounts/login/", f"user{n}", "Winter2026!", "198.51.100.7")
    response = _sign_in(client, "/accounts/login/", "carol", "carol-pass-123", "198.51.100.7")
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Someone else, elsewhere, is not affected.
    response = _sign_in(Client(), "/accounts/login/", "carol", "carol-pass-123", "203.0.113.1")
    assert response.status_code == 302


def test_a_few_typos_still_sign_in(acme_users):
    client = Client()
    for n in range(3):
        _sign_in(client, "/accounts/login/", "bob", f"typo-{n}", "198.51.100.8")
    response = _sign_in(client, "/accounts/login/", "bob", "bob-pass-123", "198.51.100.8")
    assert response.status_code == 302


@pytest.mark.parametrize("password", ["password123", "1234567890123", "bob.builder.acme"], ids=str)
def test_common_numeric_and_user_like_passwords_are_refused(acme_users, password):
    from django.contrib.auth.models import User

    bob = User.objects.get(username="bob")
    bob.first_name, bob.last_name, bob.email = "Bob", "Builder", "bob.builder@acme.example"
    with pytest.raises(ValidationError):
        validate_password(password, user=bob)
