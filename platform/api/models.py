"""Personal API keys: shown once, stored as a visible prefix and an HMAC of the whole key."""

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
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
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None
