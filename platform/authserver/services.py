"""Writes on MCP tokens and consents that other parts of the platform need."""

from oauth2_provider.models import AccessToken, RefreshToken

from authserver.models import Consent


def mcp_tokens_revoke(
    *, connector_url: str, user_id: int | None = None, application_id: int | None = None
) -> int:
    """Revoke MCP tokens bound to a connector (of one user and/or client, or all) and their
    refresh tokens, expired access tokens included (their refresh tokens may still be live);
    returns how many access tokens ended."""
    tokens = AccessToken.objects.all()
    if user_id is not None:
        tokens = tokens.filter(user_id=user_id)
    if application_id is not None:
        tokens = tokens.filter(application_id=application_id)
    # The audience is a JSON list; JSON containment is not portable to SQLite, so match here.
    ids = [t.pk for t in tokens.only("pk", "resource").iterator() if t.resource == [connector_url]]
    for refresh in RefreshToken.objects.filter(access_token__in=ids):
        refresh.revoke()
    AccessToken.objects.filter(pk__in=ids).delete()
    return len(ids)


def mcp_tokens_revoke_for_connection(connection) -> int:
    """MCP tokens that depend on an upstream connection: its member's, or all (shared)."""
    return mcp_tokens_revoke(connector_url=connection.connector.url, user_id=connection.user_id)


def consent_revoke(*, user, application_id: int, connector) -> int:
    """Forget a consent and end that client's tokens for the connector."""
    Consent.objects.filter(user=user, application_id=application_id, connector=connector).delete()
    return mcp_tokens_revoke(
        connector_url=connector.url, user_id=user.pk, application_id=application_id
    )
