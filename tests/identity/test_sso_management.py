"""Tenant admins (API, dashboard) and operators (CLI) manage the tenant's provider."""

import json

import pytest
from django.core.management import call_command

from config import crypto
from identity.models import IdentityProvider
from tenants.api_keys import api_key_create

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at")]


def test_an_admin_sets_the_provider_over_the_api_and_the_secret_stays_hidden(client, acme):
    from django.contrib.auth import get_user_model

    alice = get_user_model().objects.get(username="alice")
    _row, key = api_key_create(user=alice, name="t")
    headers = {"Authorization": f"Bearer {key}"}
    body = {
        "name": "Acme Okta",
        "issuer": "https://acme.okta.example/oauth2/default",
        "client_id": "0oa-platform",
        "client_secret": "s3cret-value",
        "allowed_domains": ["Acme.Example", "@acme.example"],
        "role_rules": [
            {"claim": "groups", "value": "Platform Admins", "role": "admin"},
            {"claim": "groups", "value": "Everyone", "role": "member"},
        ],
        "local_passwords_allowed": False,
    }

    put = client.put(
        "/api/v1/tenants/acme/sso/", body, content_type="application/json", headers=headers
    )

    assert put.status_code == 200, put.content
    answer = put.json()
    assert answer["redirect_uri"].endswith("/sso/t/acme/callback")
    assert answer["client_secret_set"] is True
    assert answer["allowed_domains"] == ["acme.example"]
    assert "s3cret-value" not in put.content.decode()
    provider = IdentityProvider.objects.get(tenant=acme["tenant"])
    assert crypto.decrypt(provider.client_secret_encrypted) == "s3cret-value"

    # Omitting the secret keeps it; a bad rule is a DRF error, not a 500.
    body.pop("client_secret")
    assert (
        client.put(
            "/api/v1/tenants/acme/sso/", body, content_type="application/json", headers=headers
        ).status_code
        == 200
    )
    provider.refresh_from_db()
    assert crypto.decrypt(provider.client_secret_encrypted) == "s3cret-value"
    bad = dict(body, role_rules=[{"claim": "groups", "value": "x", "role": "owner"}])
    refused = client.put(
        "/api/v1/tenants/acme/sso/", bad, content_type="application/json", headers=headers
    )
    assert refused.status_code == 400


def test_an_operator_sets_shows_links_and_removes_a_provider_from_the_cli(acme, tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.write_text("cli-secret\n")
    call_command(
        "sso",
        "set",
        "acme",
        "--name",
        "Keycloak",
        "--issuer",
        "https://kc.example/realms/acme",
        "--client-id",
        "platform",
        "--client-secret-file",
        str(secret),
        "--domain",
        "acme.example",
        "--rule",
        "groups=/admins:admin",
        "--rule",
        "groups=/staff:member",
        "--no-passwords",
    )
    capsys.readouterr()
    call_command("sso", "show", "acme")
    shown = json.loads(capsys.readouterr().out)
    assert shown["redirect_uri"].endswith("/sso/t/acme/callback")
    assert shown["client_secret_set"] is True and "cli-secret" not in json.dumps(shown)
    provider = IdentityProvider.objects.get(tenant=acme["tenant"])
    assert provider.role_rules == [
        {"claim": "groups", "value": "/admins", "role": "admin"},
        {"claim": "groups", "value": "/staff", "role": "member"},
    ]
    assert provider.local_passwords_allowed is False
    assert crypto.decrypt(provider.client_secret_encrypted) == "cli-secret"
    call_command("sso", "reencrypt")
    call_command("sso", "remove", "acme")
    assert not IdentityProvider.objects.exists()
