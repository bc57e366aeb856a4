"""The connector event trace: every connect step, failure and (aggregated) MCP call."""

from django.conf import settings
from django.db import models


class Event(models.Model):
    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"
        DENIED = "denied", "Denied"

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=50, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    connector = models.ForeignKey(
        "tenants.Connector", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A client is a DCR client_id, a CIMD URL, or unknown (an unauthenticated probe).
    client_id = models.CharField(max_length=255, blank=True, db_index=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    # What the client was shown (error code and description) and step-specific facts.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["connector", "-created"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.outcome}"


class AuditRecord(models.Model):
    """One tools/call: who called which tool through which client, and how it ended.

    Written in batches off the request path (events.audit); pruned by age. The references are
    not foreign keys in the database (``db_constraint=False``), and have no index of their own
    (each leads an index with the time): a record kept in a process's buffer while its user,
    connector or tenant was deleted would otherwise fail its whole batch at every flush, and
    checking three keys and keeping eight indexes per record cost PostgreSQL more than the rest
    of the call. Django still deletes (or, for the user, clears) the records of what it
    deletes; a record written after that refers to nothing and is pruned with its age."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"
        DENIED = "denied", "Refused by the platform"

    created = models.DateTimeField(db_index=True)  # when the call arrived
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.CASCADE,
        related_name="audit_records",
        db_constraint=False,
        db_index=False,
    )
    connector = models.ForeignKey(
        "tenants.Connector",
        on_delete=models.CASCADE,
        related_name="audit_records",
        db_constraint=False,
        db_index=False,
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    username = models.CharField(max_length=150, blank=True)  # kept if the user is deleted
    client_id = models.CharField(max_length=255, blank=True)
    tool = models.CharField(max_length=200)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    latency_ms = models.PositiveIntegerField()
    upstream_request_id = models.CharField(max_length=200, blank=True)
    # "full" (secrets redacted) or "digest" (keys and a hash of the values), per the connector.
    arguments_kept = models.CharField(max_length=10)
    arguments = models.JSONField(default=dict)
    error = models.CharField(max_length=500, blank=True)  # what the caller was told

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created"]),
            models.Index(fields=["connector", "-created"]),
            models.Index(fields=["user", "-created"]),
        ]

    def __str__(self) -> str:
        return f"{self.tool} {self.outcome}"
