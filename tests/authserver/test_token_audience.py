"""Tokens know their connector: an audience row written at issue, not a URL compared later."""

import hashlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import override_settings
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

from authserver.models import TokenAudience
from authserver.selectors import connected_clients
from authserver.services import mcp_client_revoke
from tests.support.flow import OAuthClient, mcp_post
from tests.support.oauth import Browser
from upstream.health import connector_stats

pytestmark = pytest.mark.django_db(transaction=True)


def _sha(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()  # tokens are stored as this only


def _audience(**token) -> int | None:
    return TokenAudience.objects.filter(**token).values_list("connector_id", flat=True).first()


def test_code_access_and_refresh_tokens_carry_their_connector(live_url, acme):
    client = OAuthClient.register(live_url)
    connector = acme["connector"]
    code, verifier = client.code_for(Browser("bob", "bob-pass-123"), connector.url)
    assert _audience(grant__in=Grant.objects.all()) == connector.pk
    tokens = client.exchange(code, verifier, connector.url).json()
    access = AccessToken.objects.get(token_checksum=_sha(tokens["access_token"]))
    refresh = RefreshToken.objects.get(token_checksum=_sha(tokens["refresh_token"]))
    assert _audience(access_token=access) == connector.pk
    assert _audience(refresh_token=refresh) == connector.pk

    renewed = client.refresh(tokens["refresh_token"]).json()
    assert _audience(access_token__token_checksum=_sha(renewed["access_token"])) == connector.pk
    assert _audience(refresh_token__token_checksum=_sha(renewed["refresh_token"])) == connector.pk


def test_tokens_keep_working_when_public_url_changes(live_url, acme):
    client = OAuthClient.register(live_url)
    connector = acme["connector"]
    tokens = client.tokens(Browser("bob", "bob-pass-123"), connector.url)
    old_url = connector.url
    with override_settings(
        PUBLIC_URL="https://connectors.example.test",
        ALLOWED_HOSTS=["connectors.example.test", "127.0.0.1"],
    ):
        assert connector.url != old_url
        # The old address still reaches this server (a host alias, a proxy during the move).
        assert mcp_post(old_url, tokens["access_token"]).status_code == 200
        renewed = client.refresh(tokens["refresh_token"])
        assert renewed.status_code == 200, renewed.text
        assert mcp_post(old_url, renewed.json()["access_token"]).status_code == 200
        # Still one connector's token only.
        other = mcp_post(
            acme["other_connector"].url.replace("https://connectors.example.test", live_url),
            renewed.json()["access_token"],
        )
        assert other.status_code == 401
        # The dashboard still lists the client, and revoking it still ends its tokens.
        assert [c.client_id for c in connected_clients(connector)] == [client.client_id]
        assert connector_stats([connector])[connector.pk].clients_connected == 1
        application = Application.objects.get(client_id=client.client_id)
        # One live refresh token, whose revocation takes its access token along.
        assert mcp_client_revoke(connector=connector, application=application, actor=None) == 1
        assert mcp_post(old_url, renewed.json()["access_token"]).status_code == 401


def test_a_token_without_an_audience_row_works_nowhere(live_url, acme):
    client = OAuthClient.register(live_url)
    tokens = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)
    TokenAudience.objects.filter(access_token__token_checksum=_sha(tokens["access_token"])).delete()
    response = mcp_post(acme["connector"].url, tokens["access_token"])
    assert response.status_code == 401
    assert "another connector" in response.json()["error_description"]


def test_migration_gives_existing_tokens_their_connector_from_their_resource(acme):
    """An existing deployment: tokens issued before audience rows existed, some under an
    earlier PUBLIC_URL, get their rows from their stored resource when it migrates."""
    executor = MigrationExecutor(connection)
    executor.migrate([("authserver", "0002_refresh_grace_answer")])
    connector = acme["connector"]
    application = Application.objects.create(
        name="old client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://claude.ai/api/mcp/auth_callback",
    )
    user = acme["tenant"].memberships.get(user__username="bob").user

    def token(name: str, resource: list) -> AccessToken:
        return AccessToken.objects.create(
            user=user,
            application=application,
            token=name,
            expires=timezone.now(),
            scope="mcp",
            resource=resource,
        )

    current = token("current", [connector.url])
    token("moved", ["https://old-host.example.com/t/acme/echo/mcp"])
    token("gone", ["https://old-host.example.com/t/acme/deleted/mcp"])
    token("unbound", [])
    refresh = RefreshToken.objects.create(
        user=user,
        application=application,
        token="r",
        access_token=current,
        resource=[connector.url],
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert dict(
        TokenAudience.objects.filter(access_token__isnull=False).values_list(
            "access_token__token_checksum", "connector_id"
        )
    ) == {_sha("current"): connector.pk, _sha("moved"): connector.pk}
    assert _audience(refresh_token=refresh) == connector.pk
