"""What the authorization server keeps beside django-oauth-toolkit's own models."""

from django.conf import settings
from django.db import models


class Consent(models.Model):
    """A user approved a client for one connector; reconnecting skips the consent page."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    connector = models.ForeignKey("tenants.Connector", on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "application", "connector"], name="one_consent_per_client_connector"
            )
        ]

    def __str__(self) -> str:
        return f"consent of user {self.user_id} for client {self.application_id}"


class UsedAuthorizationCode(models.Model):
    """Codes already exchanged, so a replay can revoke the tokens the first use issued."""

    code_checksum = models.CharField(max_length=64, unique=True)
    token_family = models.UUIDField(null=True)
    used = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"code used {self.used:%Y-%m-%d %H:%M}"


class RefreshGraceAnswer(models.Model):
    """The token pair a refresh issued, sealed with the upstream encryption keys, kept only for
    the refresh grace window: tokens are stored hashed, so a second refresh of the same token
    (a client refreshing from two nodes at once) can only be answered from here."""

    refresh_checksum = models.CharField(max_length=64, unique=True)
    sealed = models.TextField()
    expires = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"grace answer until {self.expires:%Y-%m-%d %H:%M:%S}"
