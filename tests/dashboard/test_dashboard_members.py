"""Members: invitations that wait for the invitee to accept (and reveal nothing about accounts),
resend, revoke, expiry, role changes that keep an
admin, and removal that ends the member's tokens and own upstream connections."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from authserver.models import Consent
from tenants.models import Invitation, Membership
from tenants.services import invitation_url, member_invite
from tests.support.world import PASSWORDS
from upstream.models import UpstreamConnection

pytestmark = pytest.mark.filterwarnings("ignore:No directory at")


def _invite(client, email: str, role: str = "member"):
    return client.post(
        "/dashboard/t/acme/members/invite", {"email": email, "role": role}, follow=True
    )


def _link_path(message) -> str:
    link = re.search(r"http://\S+/dashboard/invitations/\S+/", message.body).group(0)
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


def _flash(page) -> str:
    return re.search(rb'<ul class="messages".*?</ul>', page.content, re.S).group(0).decode()


def test_inviting_another_tenants_account_waits_for_it_and_reveals_nothing(client, world):
    """The attack: acme's admin invites the address of eve, who has an account in globex.
    Before, eve's account joined acme at once and the answer said so. Now nothing is attached,
    and the admin's page, the API answer and the email read the same as for an address that
    has no account."""
    eve = world.users["eve"]
    eve.email = "eve@example.com"
    eve.save()
    client.login(username="alice", password=PASSWORDS["alice"])
    known = _invite(client, "eve@example.com")
    unknown = _invite(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert _flash(known).replace("eve@", "X@") == _flash(unknown).replace("nobody@", "X@")
    assert not Membership.objects.filter(tenant=world.acme, user=eve).exists()
    assert not get_user_model().objects.filter(email="nobody@example.com").exists()
    to_eve, to_nobody = mail.outbox
    assert (
        to_eve.body.replace("eve@", "X@").split("http")[0]
        == (to_nobody.body.replace("nobody@", "X@").split("http")[0])
    )
    members = client.get("/dashboard/t/acme/members/").content.decode()
    assert "eve@example.com" in members and ">eve<" not in members  # pending, not a member
    # The API answers the same shape either way, naming no account.
    api = [
        client.post("/api/v1/tenants/acme/members/", {"email": e}, content_type="application/json")
        for e in ("eve@example.com", "nobody@example.com")
    ]
    assert [r.status_code for r in api] == [201, 201]
    assert set(api[0].json()) == set(api[1].json()) and "username" not in api[0].json()

    # The link, opened signed out, shows the same page for both addresses.
    client.logout()
    page_eve = client.get(_link_path(mail.outbox[-2])).content.decode()
    page_nobody = client.get(_link_path(mail.outbox[-1])).content.decode()

    def strip(page, who):
        return (
            re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)
            .replace(f"{who}@", "X@")
            .replace(re.search(r"/dashboard/invitations/[^\"/]+/", page).group(0), "LINK")
        )

    assert strip(page_eve, "eve") == strip(page_nobody, "nobody")

    # Someone else signed in cannot take eve's invitation.
    client.login(username="bob", password=PASSWORDS["bob"])
    refused = client.post(_link_path(mail.outbox[-2]))
    assert refused.status_code == 400 and b"another email address" in refused.content
    # Nor can a stranger create a second account for eve's address from the link.
    client.logout()
    taken = client.post(
        _link_path(mail.outbox[-2]),
        {"new_password1": "a-long-new-pass-9", "new_password2": "a-long-new-pass-9"},
    )
    assert taken.status_code == 400
    assert get_user_model().objects.filter(email__iexact="eve@example.com").count() == 1
    assert not Membership.objects.filter(tenant=world.acme, user=eve).exists()

    # eve signs in (with her email) and accepts: now she is a member.
    client.post("/accounts/login/", {"username": "eve@example.com", "password": PASSWORDS["eve"]})
    joined = client.post(_link_path(mail.outbox[-2]))
    assert joined.status_code == 302 and joined["Location"] == "/dashboard/t/acme/"
    assert Membership.objects.get(tenant=world.acme, user=eve).role == "member"


def test_a_new_address_chooses_a_password_shown_its_rules_and_joins_once(client, world):
    client.login(username="alice", password=PASSWORDS["alice"])
    _invite(client, "Carol@Example.com", role="admin")
    [message] = mail.outbox
    assert message.to == ["carol@example.com"] and "Acme Inc" in message.subject
    path = _link_path(message)
    client.logout()

    form = client.get(path)
    assert b"Choose a password" in form.content
    assert b"at least" in form.content  # the password rules are shown
    weak = client.post(path, {"new_password1": "12345678", "new_password2": "12345678"})
    assert weak.status_code == 400 and b"too common" in weak.content
    done = client.post(path, {"new_password1": "carol-pass-123", "new_password2": "carol-pass-123"})
    assert done.status_code == 302 and done["Location"] == "/dashboard/t/acme/"
    carol = get_user_model().objects.get(email="carol@example.com")
    assert Membership.objects.get(tenant=world.acme, user=carol).role == "admin"
    assert b"Acme Inc" in client.get("/dashboard/").content  # signed in, a member
    client.logout()
    again = client.get(path)
    assert again.status_code == 410 and b"accepted already" in again.content
    assert b"/accounts/password-reset/" in again.content


def test_an_expired_link_says_resend_and_resending_replaces_the_link(client, world, settings):
    client.login(username="alice", password=PASSWORDS["alice"])
    _invite(client, "dan@example.com")
    old = _link_path(mail.outbox[-1])
    invitation = Invitation.objects.get(email="dan@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(
        sent=timezone.now() - timedelta(seconds=settings.INVITATION_TTL + 1)
    )
    members = client.get("/dashboard/t/acme/members/")
    assert b"expired" in members.content and b"Resend" in members.content
    expired = client.get(old)
    assert expired.status_code == 410
    assert b"Ask an admin of Acme Inc to resend it" in expired.content

    # Re-inviting the address is a resend, not "already a member".
    resent = _invite(client, "dan@example.com")
    assert b"already a member" not in resent.content
    new = _link_path(mail.outbox[-1])
    assert new != old
    assert client.get(old).status_code == 404  # replaced
    assert Invitation.objects.filter(email="dan@example.com").count() == 1

    client.post(f"/dashboard/t/acme/invitations/{invitation.pk}/resend")
    newest = _link_path(mail.outbox[-1])
    assert client.get(new).status_code == 404
    assert client.get(newest).status_code == 200

    client.post(f"/dashboard/t/acme/invitations/{invitation.pk}/revoke")
    assert client.get(newest).status_code == 404
    assert not Invitation.objects.filter(pk=invitation.pk).exists()


def test_the_admin_is_told_where_the_email_went(client, world, settings):
    client.login(username="alice", password=PASSWORDS["alice"])
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert "We emailed them" in _flash(_invite(client, "erin@example.com"))
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    page = _invite(client, "frank@example.com")
    assert "prints emails to its console" in _flash(page)
    assert "emailed" not in _flash(page)
    # The link to copy is on the page.
    invitation = Invitation.objects.get(email="frank@example.com")
    assert invitation_url(invitation).encode() in page.content


def test_another_tenants_admin_cannot_resend_or_revoke(client, world):
    invitation = member_invite(tenant=world.acme, email="gus@example.com")
    client.login(username="eve", password=PASSWORDS["eve"])
    for action in ("resend", "revoke"):
        assert (
            client.post(f"/dashboard/t/acme/invitations/{invitation.pk}/{action}").status_code
            == 404
        )
        assert client.post(
            f"/dashboard/t/globex/invitations/{invitation.pk}/{action}"
        ).status_code in (403, 404)
    assert Invitation.objects.filter(pk=invitation.pk, nonce=invitation.nonce).exists()


def test_inviting_an_existing_member_again_is_refused(client, world):
    world.users["bob"].email = "bob@example.com"
    world.users["bob"].save()
    client.login(username="alice", password=PASSWORDS["alice"])
    response = client.post("/dashboard/t/acme/members/invite", {"email": "bob@example.com"})
    assert response.status_code == 400
    assert b"already a member" in response.content


def test_roles_change_but_a_tenant_keeps_an_admin(client, world):
    client.login(username="alice", password=PASSWORDS["alice"])
    alice = world.memberships["alice"]
    page = client.post(
        f"/dashboard/t/acme/members/{alice.pk}/role", {"role": "member"}, follow=True
    )
    assert b"keeps at least one admin" in page.content
    alice.refresh_from_db()
    assert alice.role == "admin"
    bob = world.memberships["bob"]
    client.post(f"/dashboard/t/acme/members/{bob.pk}/role", {"role": "admin"})
    bob.refresh_from_db()
    assert bob.role == "admin"


def test_removing_a_member_ends_their_tokens_consents_and_own_connections(client, world):
    bob = world.users["bob"]
    Consent.objects.create(
        user=bob, application=world.apps["bob-client"], connector=world.echo, scope="mcp"
    )
    client.login(username="alice", password=PASSWORDS["alice"])
    response = client.post(f"/dashboard/t/acme/members/{world.memberships['bob'].pk}/remove")
    assert response.status_code == 302
    assert not AccessToken.objects.filter(user=bob).exists()
    assert not RefreshToken.objects.filter(user=bob, revoked__isnull=True).exists()
    assert not Consent.objects.filter(user=bob).exists()
    assert UpstreamConnection.objects.get(pk=world.connections["bob"].pk).status == "revoked"
    # alice's own things are untouched.
    assert AccessToken.objects.filter(user=world.users["alice"]).exists()
    assert UpstreamConnection.objects.get(pk=world.connections["alice"].pk).status == "active"


def test_revoking_a_client_ends_expired_access_tokens_refresh_tokens_too(client, world):
    from django.utils import timezone

    token = world.tokens["bob-client"]
    AccessToken.objects.filter(pk=token.pk).update(expires=timezone.now())  # refresh still live
    client.login(username="alice", password=PASSWORDS["alice"])
    page = client.get(f"/dashboard/connectors/{world.echo.pk}/").content.decode()
    assert "bob-client" in page  # still connected through its refresh token
    client.post(
        f"/dashboard/connectors/{world.echo.pk}/clients/{world.apps['bob-client'].pk}/revoke"
    )
    refresh = RefreshToken.objects.get(application=world.apps["bob-client"])
    assert refresh.revoked is not None
    page = client.get(f"/dashboard/connectors/{world.echo.pk}/").content.decode()
    assert f"/clients/{world.apps['bob-client'].pk}/revoke" not in page
