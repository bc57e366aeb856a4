"""Every write of upstream tokens goes through here.

A refresh claims the connection's lease with a conditional UPDATE (so two workers or tool calls
never refresh one connection at once, on PostgreSQL and SQLite alike), calls the provider
outside any transaction, and commits the provider's answer in one UPDATE before anything else
happens. A caller that finds the lease held waits for the holder's result instead of refreshing
again.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse

from connectors.base import (
    UpstreamProvider,
    UpstreamReauthRequired,
    UpstreamTokens,
    UpstreamUnavailable,
    get_kind,
)
from events.models import Event
from events.services import event_record
from upstream import clock, crypto
from upstream.models import UpstreamConnection

log = logging.getLogger(__name__)
Status = UpstreamConnection.Status


class ConnectionUnusable(Exception):
    """The connection cannot give an access token until the user reconnects."""

    def __init__(self, connection: UpstreamConnection, message: str):
        super().__init__(message)
        self.connection = connection


@dataclass(frozen=True)
class AccessGrant:
    """A usable upstream access token and what it belongs to."""

    connection_id: int
    access_token: str
    external_account_id: str
    external_account_name: str = ""


def provider_for(connection: UpstreamConnection) -> UpstreamProvider:
    kind = get_kind(connection.connector.kind)
    if kind.upstream is None:
        raise ValueError(f"connector kind {kind.slug!r} has no upstream provider")
    return kind.upstream.build_provider()


def _token_fields(tokens: UpstreamTokens, now) -> dict:
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
        **_token_fields(tokens, now),
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


def upstream_connection_fresh(connection: UpstreamConnection, now) -> bool:
    """No refresh needed: the access token outlives the margin and the last refresh is recent
    enough to keep the provider's rolling refresh-token window moving."""
    margin = timedelta(seconds=settings.UPSTREAM_REFRESH_MARGIN)
    max_age = timedelta(seconds=settings.UPSTREAM_MAX_REFRESH_AGE)
    return connection.access_expires_at > now + margin and (
        connection.last_refresh_at is not None and connection.last_refresh_at > now - max_age
    )


def _claim_lease(connection_id: int, owner: str, now, *, seen_expiry) -> bool:
    """Take the refresh lease if nobody holds a live one and nobody refreshed since we read
    the row (its access expiry is still the one we saw). One conditional UPDATE."""
    claimed = (
        UpstreamConnection.objects.filter(pk=connection_id, access_expires_at=seen_expiry)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .exclude(status__in=[Status.NEEDS_REAUTH, Status.REVOKED])
        .update(
            lease_owner=owner,
            lease_until=now + timedelta(seconds=settings.UPSTREAM_LEASE_SECONDS),
            status=Status.REFRESHING,
        )
    )
    return claimed == 1


def _finish(connection_id: int, owner: str, **fields) -> bool:
    """Write the outcome and free the lease, only if we still hold it."""
    return (
        UpstreamConnection.objects.filter(pk=connection_id, lease_owner=owner).update(
            lease_owner="", lease_until=None, refresh_queued_until=None, **fields
        )
        == 1
    )


def upstream_connection_refresh(*, connection_id: int, force: bool = False) -> UpstreamConnection:
    """Refresh the connection's tokens unless they are still fresh; returns the fresh row.

    Raises UpstreamReauthRequired when the grant is dead (the connection is then
    needs_reauth), UpstreamUnavailable on a transient failure (the connection keeps its
    tokens and goes to error, to be retried), and waits for a refresh another process holds.
    """
    deadline = time.monotonic() + settings.UPSTREAM_LEASE_SECONDS + 5
    first_seen = None
    while True:
        connection = UpstreamConnection.objects.select_related("connector").get(pk=connection_id)
        now = clock.now()
        if connection.status in (Status.NEEDS_REAUTH, Status.REVOKED):
            raise UpstreamReauthRequired(f"connection is {connection.status}")
        first_seen = first_seen or connection.access_expires_at
        if not connection.lease_owner and (
            (not force and upstream_connection_fresh(connection, now))
            # Someone else refreshed while we waited: their tokens are the ones to use.
            or connection.access_expires_at != first_seen
        ):
            return connection
        owner = uuid.uuid4().hex
        if _claim_lease(connection_id, owner, now, seen_expiry=connection.access_expires_at):
            break
        if time.monotonic() > deadline:
            raise UpstreamUnavailable("another refresh of this connection did not finish")
        time.sleep(0.05)

    # Re-read under our lease: the refresh token to spend is the newest committed one.
    connection = UpstreamConnection.objects.select_related("connector").get(pk=connection_id)
    provider = provider_for(connection)
    started = time.monotonic()
    try:
        tokens = provider.refresh(crypto.decrypt(connection.refresh_token_encrypted))
    except UpstreamReauthRequired as exc:
        _finish(connection_id, owner, status=Status.NEEDS_REAUTH, last_error=str(exc)[:500])
        _record_refresh(connection, Event.Outcome.ERROR, started, str(exc), reauth=True)
        upstream_connection_notify_reauth(connection_id=connection_id)
        raise
    except UpstreamUnavailable as exc:
        _finish(
            connection_id,
            owner,
            status=Status.ERROR,
            last_error=str(exc)[:500],
            failure_count=connection.failure_count + 1,
        )
        _record_refresh(connection, Event.Outcome.ERROR, started, str(exc))
        raise
    except BaseException:
        # Anything else (a bug, a kill): keep the tokens, give the lease back.
        _finish(connection_id, owner, status=Status.ERROR, last_error="refresh failed unexpectedly")
        raise
    now = clock.now()
    stored = _finish(
        connection_id,
        owner,
        status=Status.ACTIVE,
        last_refresh_at=now,
        last_error="",
        failure_count=0,
        **_token_fields(tokens, now),
    )
    if not stored:
        # Our lease expired while the provider answered and another refresh took over; the
        # tokens it stores supersede ours. Rare, and logged, since a rotated value may be lost.
        log.warning(
            "refresh answer arrived after the lease expired", extra={"connection_id": connection_id}
        )
    _record_refresh(connection, Event.Outcome.OK, started, "")
    return UpstreamConnection.objects.select_related("connector").get(pk=connection_id)


def _record_refresh(connection, outcome, started, error: str, reauth: bool = False) -> None:
    event_record(
        kind="upstream.reauth_needed" if reauth else "upstream.refresh",
        outcome=outcome,
        connector=connection.connector,
        user_id=connection.user_id,
        duration_ms=int((time.monotonic() - started) * 1000),
        detail={"connection_id": connection.pk, "error": error[:300]},
    )


# last_used_at only steers the sweep (used this week or not): a minute's resolution is plenty,
# and it keeps a write off nearly every tool call (as API keys do).
LAST_USED_RESOLUTION = timedelta(seconds=60)


def upstream_connection_touch(connection: UpstreamConnection) -> None:
    """Record that the connection was used, at most once a minute (a conditional UPDATE)."""
    now = clock.now()
    if connection.last_used_at is not None and now - connection.last_used_at < LAST_USED_RESOLUTION:
        return
    UpstreamConnection.objects.filter(pk=connection.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)


def upstream_access(*, connection: UpstreamConnection, force_refresh: bool = False) -> AccessGrant:
    """A usable access token for ``connection`` (a row just read), refreshing under the lease
    when it is about to expire or when forced; no query at all when it is fresh."""
    if (
        force_refresh
        or connection.lease_owner
        or not upstream_connection_fresh(connection, clock.now())
    ):
        connection = upstream_connection_refresh(connection_id=connection.pk, force=force_refresh)
    upstream_connection_touch(connection)
    return AccessGrant(
        connection_id=connection.pk,
        access_token=crypto.decrypt(connection.access_token_encrypted),
        external_account_id=connection.external_account_id,
        external_account_name=connection.external_account_name,
    )


def upstream_connection_mark_reauth(*, connection_id: int, reason: str) -> bool:
    """The provider refuses a freshly refreshed token: mark the grant lost, tell the admins.

    Leaves a revoked connection revoked; returns whether the connection was marked."""
    marked = (
        UpstreamConnection.objects.filter(pk=connection_id)
        .exclude(status=Status.REVOKED)
        .update(status=Status.NEEDS_REAUTH, last_error=reason[:500])
    )
    if marked:
        upstream_connection_notify_reauth(connection_id=connection_id)
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
    """Email the tenant's admins, once per loss, that the connection needs a reconnect."""
    from django.core.mail import send_mail

    from tenants.models import Membership

    claimed = UpstreamConnection.objects.filter(
        pk=connection_id, reauth_notified_at__isnull=True
    ).update(reauth_notified_at=clock.now())
    if not claimed:
        return False
    connection = UpstreamConnection.objects.select_related("connector__tenant", "user").get(
        pk=connection_id
    )
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
                f"({connector.url}) stopped working: {connection.last_error or 'the grant ended'}."
                f"\n\nReconnect it here: {reconnect_url(connection)}\n"
            ),
            from_email=None,
            recipient_list=admins,
        )
    event_record(
        kind="upstream.reauth_notified",
        connector=connector,
        user_id=connection.user_id,
        detail={"connection_id": connection_id, "emailed": len(admins)},
    )
    return True


def upstream_connections_claim_due(*, batch: int | None = None) -> list[int]:
    """Claim connections the sweep should refresh now; each is enqueued once per claim.

    Due: recently used and the access token expires within the refresh margin (tool calls
    never wait on a refresh), or not refreshed for UPSTREAM_MAX_REFRESH_AGE whatever its use,
    or stuck in a refresh whose holder died. On PostgreSQL concurrent sweeps skip each other's
    rows (FOR UPDATE SKIP LOCKED); everywhere, the queued-until column is the claim.
    """
    from django.db import connection as db

    now = clock.now()
    margin = now + timedelta(seconds=settings.UPSTREAM_REFRESH_MARGIN)
    free = Q(refresh_queued_until__isnull=True) | Q(refresh_queued_until__lt=now)
    due = (
        Q(status__in=[Status.ACTIVE, Status.ERROR])
        & (
            Q(
                access_expires_at__lte=margin,
                last_used_at__gte=now - timedelta(seconds=settings.UPSTREAM_RECENT_USE_SECONDS),
            )
            | Q(last_refresh_at__lte=now - timedelta(seconds=settings.UPSTREAM_MAX_REFRESH_AGE))
            | Q(last_refresh_at__isnull=True)
        )
    ) | Q(status=Status.REFRESHING, lease_until__lt=now)
    with transaction.atomic():
        candidates = UpstreamConnection.objects.filter(due & free).order_by("access_expires_at")
        if db.vendor == "postgresql":
            candidates = candidates.select_for_update(skip_locked=True)
        ids = list(
            candidates.values_list("pk", flat=True)[: batch or settings.UPSTREAM_SWEEP_BATCH]
        )
        UpstreamConnection.objects.filter(pk__in=ids).update(
            refresh_queued_until=now + timedelta(seconds=settings.UPSTREAM_LEASE_SECONDS * 5)
        )
    return ids


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
            to_revoke.append((connection.connector.kind, token))
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
        for kind, token in to_revoke:
            try:
                get_kind(kind).upstream.build_provider().revoke(token)
            except (UpstreamReauthRequired, UpstreamUnavailable) as exc:
                log.warning("provider revocation failed", extra={"error": str(exc)[:200]})

    transaction.on_commit(revoke_at_providers)
    return count
