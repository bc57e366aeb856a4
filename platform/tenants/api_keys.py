"""API key lifecycle: create (the key is returned once), check, revoke; a user's keys.

The dashboard's key pages and the API (its authentication and `/api/v1/keys/`) both use these.
"""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from tenants.models import ApiKey

KEY_PREFIX = "mcpk_"
_PREFIX_LENGTH = len(KEY_PREFIX) + 8


def _digest(key: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), key.encode(), hashlib.sha256).hexdigest()


def api_key_create(*, user, name: str) -> tuple[ApiKey, str]:
    """A new key for ``user``; returns the row and the key, which is not kept anywhere."""
    while True:
        key = KEY_PREFIX + secrets.token_urlsafe(32).replace("-", "x").replace("_", "y")
        prefix = key[:_PREFIX_LENGTH]
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    row = ApiKey.objects.create(
        user=user, name=name.strip()[:100], prefix=prefix, digest=_digest(key)
    )
    return row, key


def api_key_check(key: str) -> ApiKey | None:
    """The live key row for ``key`` (its user active), or None. Records the use."""
    if not key.startswith(KEY_PREFIX) or len(key) <= _PREFIX_LENGTH:
        return None
    row = (
        ApiKey.objects.select_related("user")
        .filter(prefix=key[:_PREFIX_LENGTH], revoked_at__isnull=True)
        .first()
    )
    if row is None or not hmac.compare_digest(row.digest, _digest(key)):
        return None
    if not row.user.is_active:
        return None
    now = timezone.now()
    # At most one write a minute per key: the hot path of a busy script stays read-only.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
    return row


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def api_keys_of(user) -> QuerySet[ApiKey]:
    """``user``'s keys, newest first (revoked ones included: they show when it happened)."""
    return ApiKey.objects.filter(user=user)
