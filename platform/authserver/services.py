"""Writes on MCP tokens and consents: the one place MCP tokens are revoked.

Which connector a token is for is its ``TokenAudience`` row (written at issue), so every query
here is an indexed join, never a scan of token URLs.
"""

from oauth2_provider.models import AccessToken, Application, RefreshToken

from authserver.models import Consent
from events.services import event_record


def mcp_tokens_revoke(
    *,
    connector_id: int,
    user_id: int | None = None,
    application_id: int | None = None,
    forget_consents: bool = False,
) -> int:
    """End the MCP tokens bound to a connector (of one user and/or one client, or all).

    Every refresh token not yet revoked is revoked and every access token deleted, expired
    ones included: a refresh token outlives its access token, and either would let the client
    back in. With ``forget_consents`` the matching consents go too, so the client must ask
    the user again. Returns how many tokens ended.
    """
    access = AccessToken.objects.filter(audience__connector_id=connector_id)
    refresh = RefreshToken.objects.filter(audience__connector_id=connector_id, revoked__isnull=True)
    consents = Consent.objects.filter(connector_id=connector_id)
    if user_id is not None:
        access, refresh = access.filter(user_id=user_id), refresh.filter(user_id=user_id)
        consents = consents.filter(user_id=user_id)
    if application_id is not None:
        access = access.filter(application_id=application_id)
        refresh = refresh.filter(application_id=application_id)
        consents = consents.filter(application_id=application_id)
    ended = 0
    for token in refresh:
        token.revoke()  # also deletes its access token
        ended += 1
    ended += access.delete()[1].get(AccessToken._meta.label, 0)
    if forget_consents:
        consents.delete()
    return ended


def mcp_tokens_revoke_for_connection(connection) -> int:
    """MCP tokens that depend on an upstream connection: its member's, or all (shared)."""
    return mcp_tokens_revoke(connector_id=connection.connector_id, user_id=connection.user_id)


def mcp_client_revoke(*, connector, application: Application, actor, user=None) -> int:
    """Disconnect a client from a connector (for one user, or for everyone when ``user`` is
    None): its tokens end at once, its next MCP call gets 401, and it has to ask for consent
    again. Recorded in the connector's trace."""
    revoked = mcp_tokens_revoke(
        connector_id=connector.pk,
        application_id=application.pk,
        user_id=user.pk if user is not None else None,
        forget_consents=True,
    )
    event_record(
        kind="oauth.client_revoked",
        connector=connector,
        client_id=application.client_id,
        user_id=actor.pk if actor else None,
        detail={"tokens_revoked": revoked, "for_user": user.username if user else "everyone"},
    )
    return revoked


def mcp_token_revoke(*, connector, token_id: int, kind: str, actor) -> bool:
    """End one token of the connector (an access token, or a refresh token and its access
    token); False when no such token is bound to it."""
    model = AccessToken if kind == "access" else RefreshToken
    token = (
        model.objects.select_related("application")
        .filter(pk=token_id, audience__connector_id=connector.pk)
        .first()
    )
    if token is None:
        return False
    token.revoke()
    event_record(
        kind="oauth.client_revoked",
        connector=connector,
        client_id=token.application.client_id if token.application else "",
        user_id=actor.pk if actor else None,
        detail={"tokens_revoked": 1, "token_ref": f"{kind} {token_id}"},
    )
    return True
