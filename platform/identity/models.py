"""A tenant's OpenID Connect identity provider, and which platform user each of its people is."""

from django.conf import settings
from django.db import models

from tenants.models import Tenant


class IdentityProvider(models.Model):
    """One OpenID Connect provider per tenant: who may sign in, and with which role.

    ``role_rules`` is an ordered list of ``{"claim": ..., "value": ..., "role": ...}`` with role
    ``admin``, ``member`` or ``none``; see ``identity.mapping``.
    """

    class DefaultRole(models.TextChoices):
        MEMBER = "member", "Member"
        NONE = "none", "No access"

    tenant = models.OneToOneField(
        Tenant, on_delete=models.CASCADE, related_name="identity_provider"
    )
    name = models.CharField(max_length=100, help_text='Shown as "Sign in with <name>".')
    issuer = models.URLField(max_length=300)
    client_id = models.CharField(max_length=300)
    # Encrypted with the upstream keys (MultiFernet, rotatable): it must be read back.
    client_secret_encrypted = models.TextField(blank=True)
    scopes = models.CharField(max_length=300, default="openid email profile")
    allowed_domains = models.JSONField(default=list, blank=True)
    role_rules = models.JSONField(default=list, blank=True)
    default_role = models.CharField(
        max_length=10, choices=DefaultRole.choices, default=DefaultRole.NONE
    )
    local_passwords_allowed = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant.slug})"


class ExternalIdentity(models.Model):
    """A person at a provider (its ``sub``) and the platform user they sign in as.

    ``subject`` is empty while an operator's link waits for that person's first sign-in.
    """

    class LinkedBy(models.TextChoices):
        SIGN_IN = "sign_in", "Created at first sign-in"
        LOCAL = "local", "Linked by the account's owner after a password sign-in"
        OPERATOR = "operator", "Linked by an operator"

    provider = models.ForeignKey(
        IdentityProvider, on_delete=models.CASCADE, related_name="identities"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    # NULL, not "", while pending: several pending links must not collide on the unique pair.
    subject = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    email = models.CharField(max_length=254, blank=True)
    linked_by = models.CharField(max_length=10, choices=LinkedBy.choices)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "subject"], name="one_user_per_subject"),
            models.UniqueConstraint(fields=["provider", "user"], name="one_subject_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.provider}"
