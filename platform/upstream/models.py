"""Provider-neutral upstream connections: encrypted tokens, status, lease."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class UpstreamConnection(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REFRESHING = "refreshing", "Refreshing"
        NEEDS_REAUTH = "needs_reauth", "Needs reconnect"
        ERROR = "error", "Error (retrying)"
        REVOKED = "revoked", "Revoked"

    connector = models.ForeignKey(
        "tenants.Connector", on_delete=models.CASCADE, related_name="upstream_connections"
    )
    # None for the tenant's shared connection (connector mode "shared").
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="upstream_connections",
    )
    provider = models.CharField(max_length=50)
    external_account_id = models.CharField(max_length=100, blank=True)
    external_account_name = models.CharField(max_length=200, blank=True)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Fernet tokens (config.crypto); never shown anywhere.
    access_token_encrypted = models.TextField()
    refresh_token_encrypted = models.TextField()
    access_expires_at = models.DateTimeField()
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    last_refresh_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    # A refresh in progress holds the lease; an expired lease (crashed holder) is free again.
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Set by the sweep when it enqueues a refresh, so the next sweep does not enqueue it again.
    refresh_queued_until = models.DateTimeField(null=True, blank=True)
    reauth_notified_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "user"],
                condition=Q(user__isnull=False),
                name="one_upstream_connection_per_member",
            ),
            models.UniqueConstraint(
                fields=["connector"],
                condition=Q(user__isnull=True),
                name="one_shared_upstream_connection",
            ),
        ]
        indexes = [models.Index(fields=["status", "access_expires_at"])]

    def __str__(self) -> str:
        owner = f"user {self.user_id}" if self.user_id else "shared"
        return f"{self.provider} connection of connector {self.connector_id} ({owner})"
