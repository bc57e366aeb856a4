"""Start-up checks (Django system checks) that refuse a production deployment which would lose
upstream grants or reconnect notices silently. ``migrate`` runs them, database checks
included, so compose starts nothing on a bad configuration; web runs them when it starts."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


@checks.register(checks.Tags.security)
def upstream_encryption_keys_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Every key in UPSTREAM_ENCRYPTION_KEYS is a Fernet key."""
    from config import crypto

    try:
        crypto.keys_load(settings.UPSTREAM_ENCRYPTION_KEYS)
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint="Generate a key with: openssl rand -base64 32 | tr '+/' '-_'",
                id="upstream.E001",
            )
        ]
    return []


@checks.register(checks.Tags.database)
def upstream_tokens_decrypt_check(app_configs, databases=None, **kwargs):
    """Every stored upstream token decrypts with the configured keys (after a restore or a
    key rotation, a missing old key would otherwise surface only at the next refresh)."""
    if not databases or "default" not in databases:
        return []
    from django.db import DatabaseError

    from config import crypto
    from upstream.models import UpstreamConnection

    try:
        crypto.keys_load(settings.UPSTREAM_ENCRYPTION_KEYS)
    except ImproperlyConfigured:
        return []  # upstream.E001 says why
    live = UpstreamConnection.objects.exclude(status=UpstreamConnection.Status.REVOKED)
    unreadable, total = [], 0
    try:
        for pk, refresh_token in live.values_list("pk", "refresh_token_encrypted").iterator():
            total += 1
            try:
                crypto.decrypt(refresh_token)
            except crypto.UndecryptableToken:
                unreadable.append(pk)
    except DatabaseError:
        return []  # not migrated yet: nothing is stored
    if not unreadable:
        return []
    return [
        checks.Error(
            f"{len(unreadable)} of {total} stored upstream connections cannot be decrypted with "
            f"UPSTREAM_ENCRYPTION_KEYS (ids {', '.join(map(str, unreadable[:10]))}"
            f"{', ...' if len(unreadable) > 10 else ''})",
            hint="Add back the key they were encrypted with (after the current ones), then run "
            "`manage.py upstream_reencrypt` (README, Self-hosting: key rotation and restore).",
            id="upstream.E002",
        )
    ]


@checks.register(checks.Tags.compatibility)
def email_delivery_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Production sends reconnect notices by SMTP: it needs a mail server to send them to."""
    if settings.EMBEDDED or settings.EMAIL_BACKEND != SMTP_BACKEND or settings.EMAIL_HOST:
        return []
    return [
        checks.Error(
            "EMAIL_HOST is not set: reconnect notices and invitations could not be sent",
            hint="Set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, "
            "EMAIL_USE_TLS) in .env, or choose another EMAIL_BACKEND explicitly.",
            id="upstream.E003",
        )
    ]
