"""What the authorization server keeps beside django-oauth-toolkit's own models."""

from django.conf import settings
from django.db import models
from oauth2_provider.settings import oauth2_settings


class Consent(models.Model):
    """A user approved a client for one connector, returning to one redirect URI, as the client
    described itself then; reconnecting skips the consent page only while all of that holds."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    connector = models.ForeignKey("tenants.Connector", on_delete=models.CASCADE, related_name="+")
    # The redirect URI the code goes to (loopback: without the port, which RFC 8252 lets vary).
    redirect_uri = models.TextField()
    # authserver.consent.client_digest of the client when approved: any change asks again.
    client_digest = models.CharField(max_length=64)
    scope = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "application", "connector", "redirect_uri"],
                name="one_consent_per_client_connector_redirect",
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


class TokenAudience(models.Model):
    """The connector an MCP token (or the authorization code it comes from) is for.

    The RFC 8707 ``resource`` on DOT's rows stays the audience on the wire; this row is the
    same fact as a relation, written when the code or token is issued, so "which connector is
    this token for" is an indexed join and survives a change of ``PUBLIC_URL``. A side table
    rather than swapped DOT models: swapping is only safe before DOT's first migration, and
    deployments with tokens already exist. Exactly one of the three token columns is set.
    """

    connector = models.ForeignKey("tenants.Connector", on_delete=models.CASCADE, related_name="+")
    grant = models.OneToOneField(
        oauth2_settings.GRANT_MODEL, on_delete=models.CASCADE, null=True, related_name="audience"
    )
    access_token = models.OneToOneField(
        oauth2_settings.ACCESS_TOKEN_MODEL,
        on_delete=models.CASCADE,
        null=True,
        related_name="audience",
    )
    refresh_token = models.OneToOneField(
        oauth2_settings.REFRESH_TOKEN_MODEL,
        on_delete=models.CASCADE,
        null=True,
        related_name="audience",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(grant__isnull=False, access_token=None, refresh_token=None)
                    | models.Q(grant=None, access_token__isnull=False, refresh_token=None)
                    | models.Q(grant=None, access_token=None, refresh_token__isnull=False)
                ),
                name="token_audience_names_one_token",
            )
        ]

    def __str__(self) -> str:
        return f"token audience: connector {self.connector_id}"
