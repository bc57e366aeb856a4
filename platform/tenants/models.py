"""Tenants, their members, the connectors they host, and the members' personal API keys."""

from datetime import timedelta

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use lowercase letters, digits and hyphens (1-50 characters, no hyphen at either end).",
)


class Tenant(models.Model):
    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class Connector(models.Model):
    class Mode(models.TextChoices):
        PER_USER = "per_user", "Each member connects their own account"
        SHARED = "shared", "One connection shared by the tenant"

    class AuditArguments(models.TextChoices):
        WRITES = "writes", "Write tools in full, reads as a redacted digest"
        FULL = "full", "Every call in full (secrets still redacted)"
        DIGEST = "digest", "Every call as a redacted digest"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="connectors")
    kind = models.CharField(max_length=50)
    slug = models.CharField(max_length=50, validators=[slug_validator])
    name = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.PER_USER)
    settings = models.JSONField(default=dict, blank=True)
    # Which tools are off and which only admins may call (tenants.policy); read with the
    # gateway's bearer check, in the same query.
    tool_policy = models.JSONField(default=dict, blank=True)
    audit_arguments = models.CharField(
        max_length=10, choices=AuditArguments.choices, default=AuditArguments.WRITES
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "slug"], name="connector_slug_unique_in_tenant"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.slug}"

    @property
    def display_name(self) -> str:
        return self.name or self.slug

    @property
    def path(self) -> str:
        return connector_path(self.tenant.slug, self.slug)

    @property
    def url(self) -> str:
        return connector_url(self.tenant.slug, self.slug)


def connector_path(tenant_slug: str, connector_slug: str) -> str:
    return f"/t/{tenant_slug}/{connector_slug}/mcp"


def connector_url(tenant_slug: str, connector_slug: str) -> str:
    """The URL a user pastes into an MCP client; also the token audience (RFC 8707)."""
    return settings.PUBLIC_URL + connector_path(tenant_slug, connector_slug)


class ApiKey(models.Model):
    """A personal API key: shown once, stored as a visible prefix and an HMAC of the whole key."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    # "mcpk_" and 8 random characters: enough to find the row and to recognise a leaked key.
    prefix = models.CharField(max_length=16, unique=True)
    # HMAC-SHA256 of the whole key under SECRET_KEY (hex); the key itself is never stored.
    digest = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_apikey"  # made by the api app's first migration; the table stayed
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class Invitation(models.Model):
    """An invitation by email, pending until the invitee accepts it signed in (an existing
    account) or by choosing a password (a new one). Its link carries the id and a nonce,
    signed with SECRET_KEY; resending draws a new nonce, so older links stop working."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(
        max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    nonce = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    sent = models.DateTimeField()
    accepted = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "email"],
                condition=models.Q(accepted__isnull=True),
                name="one_pending_invitation_per_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant} ({self.role})"

    @property
    def expires(self):
        return self.sent + timedelta(seconds=settings.INVITATION_TTL)

    @property
    def expired(self) -> bool:
        return self.accepted is None and timezone.now() >= self.expires
