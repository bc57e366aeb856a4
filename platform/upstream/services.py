"""The connection lifecycle: every write of upstream tokens outside a refresh goes through here.

Store a connection after a consent, find the one a call uses, mark a lost grant and tell the
admins once, disconnect (revoking at the provider), end a leaving member's connections, and
re-encrypt under a new key. Refreshing is the refresh engine's (upstream.refresh).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from config import crypto
from connectors.base import (
    UpstreamProvider,
    UpstreamReauthRequired,
    UpstreamTokens,
    UpstreamUnavailable,
    get_kind,
)
from events.services import event_record
from upstream import clock
from upstream.models import UpstreamConnection

log = logging.getLogger(__name__)
Status = UpstreamConnection.Status


def connector_settings_opened(connector) -> dict:
    """The connector's settings as its kind's code sees them: secrets unsealed."""
    schema = get_kind(connector.kind).settings_schema
    if not schema.has_secrets:
        return dict(connector.settings)
    return schema.opened(connector.settings, crypto.decrypt)


def connector_provider(connector) -> UpstreamProvider:
    """The upstream provider of ``connector`` (per-connector kinds are built from its settings)."""
    kind = get_kind(connector.kind)
    if kind.upstream is None:
        raise ValueError(f"connector kind {kind.slug!r} has no upstream provider")
    return kind.upstream.provider_for(connector_settings_opened(connector))


def provider_for(connection: UpstreamConnection) -> UpstreamProvider:
    return connector_provider(connection.connector)


def token_fields(tokens: UpstreamTokens, now) -> dict:
    """The stored (encrypted) form of a provider's token answer, with expiries from ``now``."""
    fields = {
        "access_token_encrypted": crypto.encrypt(tokens.access_token),
        "refresh_token_encrypted": crypto.encrypt(tokens.refresh_token),
        "access_expires_at": now + timedelta(seconds=tokens.expires_in),
        "refresh_expires_at": (
            now + timedelta(seconds=tokens.refresh_expires_in)
            if tokens.refresh_expires_in is not None
            else None
        ),
    }
    return fields


def upstream_connection_store(
    *, connector, user, provider: str, tokens: UpstreamTokens, connected_by=None
) -> UpstreamConnection:
    """Create or replace the connection of (connector, user or shared) after a consent."""
    now = clock.now()
    defaults = {
        **token_fields(tokens, now),
        "provider": provider,
        "external_account_id": tokens.external_account_id,
        "external_account_name": tokens.external_account_name,
        "connected_by": connected_by or user,
        "status": Status.ACTIVE,
        "last_refresh_at": now,
        "last_error": "",
        "failure_count": 0,
        "lease_owner": "",
        "lease_until": None,
        "reauth_notified_at": None,
    }
    with transaction.atomic():
        connection, created = UpstreamConnection.objects.update_or_create(
            connector=connector, user=user, defaults=defaults
        )
    event_record(
        kind="upstream.connected",
        connector=connector,
        user_id=(connected_by or user).pk if (connected_by or user) else None,
        detail={
            "provider": provider,
            "account": tokens.external_account_id,
            "mode": "shared" if user is None else "per_user",
            "replaced": not created,
        },
    )
    return connection


def upstream_connection_mark_reauth(*, connection_id: int, reason: str) -> bool:
    """The provider refuses a freshly refreshed token: mark the grant lost, tell the admins.

    Leaves a revoked connection revoked; returns whether the connection was marked."""
    marked = (
        UpstreamConnection.objects.filter(pk=connection_id)
        .exclude(status=Status.REVOKED)
        .update(status=Status.NEEDS_REAUTH, last_error=reason[:500])
    )
    if marked:
        upstream_connection_reauth_needed(connection_id=connection_id)
    return marked == 1


def upstream_connection_for(*, connector, user_id: int | None) -> UpstreamConnection | None:
    """The connection a member's calls use: their own (per_user) or the tenant's (shared)."""
    owner = None if connector.mode == "shared" else user_id
    return UpstreamConnection.objects.filter(connector=connector, user_id=owner).first()


def upstream_connection_disconnect(*, connection_id: int, actor=None) -> None:
    """Revoke the grant at the provider, mark the connection revoked, end dependent MCP tokens."""
    from authserver.services import mcp_tokens_revoke_for_connection

    connection = UpstreamConnection.objects.select_related("connector").get(pk=connection_id)
    error = ""
    try:
        provider_for(connection).revoke(crypto.decrypt(connection.refresh_token_encrypted))
    except (UpstreamReauthRequired, UpstreamUnavailable, crypto.UndecryptableToken) as exc:
        error = str(exc)[:300]  # revoked locally all the same; the provider side may linger
    UpstreamConnection.objects.filter(pk=connection_id).update(
        status=Status.REVOKED, lease_owner="", lease_until=None, last_error=error
    )
    revoked = mcp_tokens_revoke_for_connection(connection)
    event_record(
        kind="upstream.disconnected",
        connector=connection.connector,
        user_id=actor.pk if actor else None,
        detail={
            "connection_id": connection_id,
            "provider_error": error,
            "mcp_tokens_revoked": revoked,
        },
    )


def upstream_keys_reencrypt() -> int:
    """Re-encrypt every stored token under the newest key; returns connections rewritten."""
    count = 0
    for pk in UpstreamConnection.objects.values_list("pk", flat=True).iterator():
        with transaction.atomic():
            connection = UpstreamConnection.objects.select_for_update().get(pk=pk)
            connection.access_token_encrypted = crypto.reencrypt(connection.access_token_encrypted)
            connection.refresh_token_encrypted = crypto.reencrypt(
                connection.refresh_token_encrypted
            )
            connection.save(update_fields=["access_token_encrypted", "refresh_token_encrypted"])
        count += 1
    return count


def reconnect_url(connection: UpstreamConnection) -> str:
    """Where a person restores the connection (the tenant admin for a shared one)."""
    return connector_connect_url(connection.connector_id)


def connector_connect_url(connector_id: int) -> str:
    """Where a person connects (or reconnects) the upstream account of a connector."""
    return settings.PUBLIC_URL + reverse("connector-connect", args=[connector_id])


def upstream_connection_notify_reauth(*, connection_id: int) -> bool:
    """Email the tenant's admins that the connection needs a reconnect, once per loss.

    The connection is marked as told only once the mail server took the message: a failed send
    raises and leaves it unmarked, so the next sweep tries again. The row stays locked while
    sending, and a concurrent sender skips it, so a notice is never sent twice. Returns whether
    this call told them.
    """
    from django.core.mail import send_mail

    from tenants.models import Membership

    with transaction.atomic():
        connection = (
            UpstreamConnection.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connector__tenant", "user")
            .filter(pk=connection_id, status=Status.NEEDS_REAUTH, reauth_notified_at__isnull=True)
            .first()
        )
        if connection is None:
            return False
        connector = connection.connector
        admins = list(
            Membership.objects.filter(tenant=connector.tenant, role=Membership.Role.ADMIN)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
        whose = f"{connection.user.username}'s" if connection.user else "The shared"
        kind = get_kind(connector.kind)
        if admins:
            send_mail(
                subject=f"[{connector.tenant.name}] {kind.title} needs to be reconnected",
                message=(
                    f"{whose} {kind.title} connection of the connector {connector.display_name} "
                    f"({connector.url}) stopped working: "
                    f"{connection.last_error or 'the grant ended'}."
                    f"\n\nReconnect it here: {reconnect_url(connection)}\n"
                ),
                from_email=None,
                recipient_list=admins,
            )
        UpstreamConnection.objects.filter(pk=connection_id).update(reauth_notified_at=clock.now())
    event_record(
        kind="upstream.reauth_notified",
        connector=connector,
        user_id=connection.user_id,
        detail={"connection_id": connection_id, "emailed": len(admins)},
    )
    return True


def upstream_connection_reauth_needed(*, connection_id: int) -> None:
    """The grant is gone: the admins are told by a task once this transaction commits."""
    from upstream.tasks import upstream_notify_reauth

    transaction.on_commit(lambda: upstream_notify_reauth.delay(connection_id))


def upstream_connections_awaiting_notice() -> list[int]:
    """Connections that need a reconnect whose admins have not been told yet."""
    return list(
        UpstreamConnection.objects.filter(
            status=Status.NEEDS_REAUTH, reauth_notified_at__isnull=True
        ).values_list("pk", flat=True)
    )


def upstream_connections_end_for_member(*, user_id: int, tenant_id: int | None = None) -> int:
    """A member left a tenant (or the user is being deleted): end their per-user connections.

    Runs inside the deleting transaction: the rows are marked revoked now, and the provider
    revocations (network calls) happen once that transaction commits.
    """
    from authserver.services import mcp_tokens_revoke

    connections = UpstreamConnection.objects.select_related("connector__tenant").filter(
        user_id=user_id
    )
    if tenant_id is not None:
        connections = connections.filter(connector__tenant_id=tenant_id)
    to_revoke = []
    for connection in connections:
        try:
            token = crypto.decrypt(connection.refresh_token_encrypted)
            to_revoke.append((connection.connector, token))
        except crypto.UndecryptableToken:
            pass
        mcp_tokens_revoke(connector_id=connection.connector_id, user_id=user_id)
        event_record(
            kind="upstream.disconnected",
            connector=connection.connector,
            user_id=user_id,
            detail={"connection_id": connection.pk, "reason": "membership ended"},
        )
    count = connections.update(status=Status.REVOKED, lease_owner="", lease_until=None)

    def revoke_at_providers():
        for connector, token in to_revoke:
            try:
                connector_provider(connector).revoke(token)
            except (UpstreamReauthRequired, UpstreamUnavailable) as exc:
                log.warning("provider revocation failed", extra={"error": str(exc)[:200]})

    transaction.on_commit(revoke_at_providers)
    return count
