"""Members: invitation by email with a one-time set-password link, role changes that keep an
admin, and removal that ends the member's tokens and own upstream connections."""

import re

import pytest
from django.core import mail
from oauth2_provider.models import AccessToken, RefreshToken

from authserver.models import Consent
from tests.support.world import PASSWORDS
from upstream.models import UpstreamConnection

pytestmark = pytest.mark.filterwarnings("ignore:No directory at")


def test_an_invitation_sends_a_link_that_sets_a_password_once(client, world):
    client.login(username="alice", password=PASSWORDS["alice"])
    response = client.post(
        "/dashboard/t/acme/members/invite", {"email": "Carol@Example.com", "role": "member"}
    )
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["carol@example.com"] and "Acme Inc" in message.subject
    link = re.search(r"http://\S+/accounts/set-password/\S+/", message.body).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]
    client.logout()

    form = client.get(f"/{path}", follow=True)
    assert b"Choose your password" in form.content
    done = client.post(
        form.redirect_chain[-1][0] if form.redirect_chain else f"/{path}",
        {"new_password1": "carol-pass-123", "new_password2": "carol-pass-123"},
    )
    assert done.status_code == 302 and done["Location"] == "/dashboard/"
    assert b"Acme Inc" in client.get("/dashboard/").content  # signed in, a member
    client.logout()
    again = client.get(f"/{path}", follow=True)
    assert b"This link no longer works" in again.content


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
