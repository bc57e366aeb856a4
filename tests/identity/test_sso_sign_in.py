"""Signing in through a tenant's OpenID Connect provider (a real one, on loopback): who gets
in, with which role, re-applied at every sign-in, and who is refused."""

import httpx
import pytest
from django.contrib.auth import get_user_model
from oauth2_provider.models import AccessToken

from identity.models import ExternalIdentity
from tenants.models import Membership
from tests.support.idp_process import SsoBrowser
from tests.support.world import _client as mcp_client_with_token

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


def _membership(email: str):
    return Membership.objects.filter(user__email=email, tenant__slug="acme").first()


def _signed_in_as(browser: SsoBrowser, base: str) -> str | None:
    response = browser.http.get(f"{base}/api/v1/me/")
    return response.json()["username"] if response.status_code == 200 else None


def test_first_sign_in_creates_the_account_and_the_membership_with_the_mapped_role(
    live_url, acme_sso, idp
):
    sub = idp.person("dana", email="dana@acme.test", groups=["acme-admins", "everyone"])
    browser = SsoBrowser(idp, "dana")

    response = browser.sign_in(live_url, "acme", "/dashboard/t/acme/members/")

    assert response.status_code == 302
    assert response.headers["location"] == "/dashboard/t/acme/members/"
    assert _signed_in_as(browser, live_url) == "dana@acme.test"
    membership = _membership("dana@acme.test")
    assert membership.role == "admin"
    assert not membership.user.has_usable_password()
    identity = ExternalIdentity.objects.get(user=membership.user)
    assert (identity.subject, identity.linked_by) == (sub, "sign_in")
    # The admin page the person asked for is open to them.
    assert browser.http.get(f"{live_url}/dashboard/t/acme/members/").status_code == 200


def test_each_sign_in_reapplies_the_mapping_and_removal_ends_tokens_and_connections(
    live_url, acme_sso, idp, quickbooks_on_emulator
):
    from tenants.services import connector_create

    idp.person("erin", email="erin@acme.test", groups=["acme-admins"])
    assert SsoBrowser(idp, "erin").sign_in(live_url, "acme").status_code == 302
    assert _membership("erin@acme.test").role == "admin"

    idp.person("erin", email="erin@acme.test", groups=["acme-staff"])
    assert SsoBrowser(idp, "erin").sign_in(live_url, "acme").status_code == 302
    assert _membership("erin@acme.test").role == "member"

    # Erin uses the tenant meanwhile: an MCP token and her own QuickBooks connection.
    user = User.objects.get(email="erin@acme.test")
    books = connector_create(tenant=acme_sso.tenant, kind="quickbooks", slug="books")
    connection = quickbooks_on_emulator.store_connection(connector=books, user=user)[0]
    _app, token = mcp_client_with_token(
        "erin-client", user, acme_sso.tenant.connectors.get(slug="echo")
    )

    idp.person("erin", email="erin@acme.test", groups=["contractors", "acme-staff"])
    browser = SsoBrowser(idp, "erin")
    response = browser.sign_in(live_url, "acme")

    assert response.status_code == 403
    assert "No access to Acme Inc" in response.text
    assert _membership("erin@acme.test") is None
    assert not AccessToken.objects.filter(pk=token.pk).exists()
    connection.refresh_from_db()
    assert connection.status == "revoked"
    assert _signed_in_as(browser, live_url) is None


def test_a_person_in_no_allowed_group_is_refused_with_a_clear_page(live_url, acme_sso, idp):
    idp.person("frank", email="frank@acme.test", groups=["sales"])
    browser = SsoBrowser(idp, "frank")

    response = browser.sign_in(live_url, "acme")

    assert response.status_code == 403
    assert "none of the groups that may use Acme Inc" in response.text
    assert not User.objects.filter(email="frank@acme.test").exists()
    assert _signed_in_as(browser, live_url) is None


@pytest.mark.parametrize(
    ("email", "verified"), [("gina@gmail.test", True), ("gina@acme.test", False)]
)
def test_an_address_outside_the_allowed_domains_or_unverified_is_refused(
    live_url, acme_sso, idp, email, verified
):
    idp.person("gina", email=email, email_verified=verified, groups=["acme-admins"])
    browser = SsoBrowser(idp, "gina")

    response = browser.sign_in(live_url, "acme")

    assert response.status_code == 403
    assert ("accepts only accounts of acme.test" in response.text) or (
        "did not vouch for an email address" in response.text
    )
    assert not User.objects.filter(email=email).exists()
    assert _signed_in_as(browser, live_url) is None


@pytest.mark.parametrize(
    ("misbehave", "error"),
    [
        ("forged", "BadSignatureError"),
        ("expired", "ExpiredTokenError"),
        ("wrong_audience", "aud"),
        ("wrong_issuer", "iss"),
        ("wrong_nonce", "nonce"),
    ],
)
def test_an_id_token_that_fails_verification_signs_nobody_in(
    live_url, acme_sso, idp, misbehave, error
):
    idp.person("hal", email="hal@acme.test", groups=["acme-admins"], misbehave=misbehave)
    browser = SsoBrowser(idp, "hal")

    response = browser.sign_in(live_url, "acme")

    assert response.status_code == 400, response.text
    assert "The sign-in could not be verified" in response.text
    assert error in response.text
    assert not User.objects.filter(email="hal@acme.test").exists()
    assert _signed_in_as(browser, live_url) is None


def test_a_replayed_or_foreign_state_is_refused(live_url, acme_sso, idp):
    idp.person("ivy", email="ivy@acme.test", groups=["acme-staff"])
    browser = SsoBrowser(idp, "ivy")
    callback = browser.to_callback(f"{live_url}/sso/t/acme/start")

    # The callback in another browser (an attacker's, or a leaked URL): no pending sign-in.
    stranger = httpx.Client()
    assert stranger.get(callback).status_code == 400
    assert not User.objects.filter(email="ivy@acme.test").exists()

    assert browser.http.get(callback).status_code == 302  # the real one, once
    replay = browser.http.get(callback)
    assert replay.status_code == 400
    assert "This sign-in has expired" in replay.text


def test_a_local_account_with_the_same_email_is_not_taken_over(live_url, acme_sso, idp):
    from tenants.services import member_add
    from tests.support.oauth import CSRF

    acme_sso.local_passwords_allowed = True
    acme_sso.save()
    jo = member_add(
        tenant=acme_sso.tenant, username="jo", password="jo-local-pass", email="jo@acme.test"
    ).user
    idp.person("jo-at-idp", email="JO@acme.test", groups=["acme-admins"])

    # Someone who controls an IdP account with jo's address gets a refusal, not jo's account.
    intruder = SsoBrowser(idp, "jo-at-idp")
    response = intruder.sign_in(live_url, "acme")
    assert response.status_code == 403
    assert "already has an account here" in response.text
    assert _signed_in_as(intruder, live_url) is None
    assert not ExternalIdentity.objects.exists()
    assert Membership.objects.get(user=jo).role == "member"

    # Jo signs in with the password, then links the provider account.
    owner = SsoBrowser(idp, "jo-at-idp")
    page = owner.http.get(f"{live_url}/accounts/login/")
    owner.http.post(
        f"{live_url}/accounts/login/",
        data={
            "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
            "username": "jo",
            "password": "jo-local-pass",
        },
    )
    link_page = owner.http.get(f"{live_url}/sso/t/acme/link")
    assert "Link Acme IdP" in link_page.text
    callback = owner.to_callback_from_post(
        f"{live_url}/sso/t/acme/link",
        {"csrfmiddlewaretoken": CSRF.search(link_page.text).group(1)},
    )
    assert owner.http.get(callback).status_code == 302
    assert ExternalIdentity.objects.get(user=jo).linked_by == "local"

    # From now on the provider signs in as jo, with the mapped role.
    again = SsoBrowser(idp, "jo-at-idp")
    assert again.sign_in(live_url, "acme").status_code == 302
    assert _signed_in_as(again, live_url) == "jo"
    assert Membership.objects.get(user=jo).role == "admin"


def test_an_operator_links_an_existing_account_from_the_command_line(live_url, acme_sso, idp):
    from django.core.management import call_command

    kim = User.objects.create_user("kim", email="kim@acme.test", password="kim-local-pass")
    idp.person("kim-at-idp", email="kim@acme.test", groups=["acme-staff"])
    call_command("sso", "link", "acme", "kim")

    browser = SsoBrowser(idp, "kim-at-idp")
    assert browser.sign_in(live_url, "acme").status_code == 302
    assert _signed_in_as(browser, live_url) == "kim"
    assert Membership.objects.get(user=kim).role == "member"
    assert ExternalIdentity.objects.get(user=kim).linked_by == "operator"


def test_members_of_a_tenant_without_local_passwords_cannot_sign_in_with_one(
    live_url, acme_sso, idp
):
    from tests.support.oauth import CSRF

    def password_sign_in(username, password):
        http = httpx.Client()
        page = http.get(f"{live_url}/accounts/login/")
        return http.post(
            f"{live_url}/accounts/login/",
            data={
                "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
                "username": username,
                "password": password,
            },
        )

    # bob (a member of acme) still has a password, but acme signs in only through its IdP.
    assert password_sign_in("bob", "bob-pass-123").status_code == 200
    # eve (globex only) and operators keep theirs.
    assert password_sign_in("eve", "eve-pass-123").status_code == 302
    User.objects.create_superuser("root", "root@example.com", "root-pass-123")
    Membership.objects.create(
        tenant=acme_sso.tenant, user=User.objects.get(username="root"), role="admin"
    )
    assert password_sign_in("root", "root-pass-123").status_code == 302

    acme_sso.local_passwords_allowed = True
    acme_sso.save()
    assert password_sign_in("bob", "bob-pass-123").status_code == 302


def test_the_providers_tokens_are_not_kept(live_url, acme_sso, idp):
    import sqlite3
    from pathlib import Path

    from django.contrib.sessions.models import Session
    from django.core import serializers

    idp.person("lou", email="lou@acme.test", groups=["acme-staff"])
    assert SsoBrowser(idp, "lou").sign_in(live_url, "acme").status_code == 302

    with sqlite3.connect(Path(idp.state_dir) / "idp.db") as db:
        issued = [row[0] for row in db.execute("SELECT token FROM oauth2_provider_accesstoken")]
        issued += [row[0] for row in db.execute("SELECT token FROM oauth2_provider_refreshtoken")]
    assert issued
    kept = [str(s.get_decoded()) for s in Session.objects.all()]
    kept.append(
        serializers.serialize(
            "json", [*ExternalIdentity.objects.all(), *User.objects.filter(email="lou@acme.test")]
        )
    )
    for token in issued:
        assert not any(token in text for text in kept)
