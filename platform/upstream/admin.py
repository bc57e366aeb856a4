from django.contrib import admin

from upstream.models import UpstreamConnection


@admin.register(UpstreamConnection)
class UpstreamConnectionAdmin(admin.ModelAdmin):
    """Status only: the encrypted token columns are excluded from every admin page."""

    list_display = [
        "__str__",
        "status",
        "external_account_id",
        "access_expires_at",
        "last_refresh_at",
    ]
    list_filter = ["status", "provider"]
    exclude = ["access_token_encrypted", "refresh_token_encrypted"]
    readonly_fields = [
        "connector",
        "user",
        "provider",
        "external_account_id",
        "external_account_name",
        "connected_by",
        "access_expires_at",
        "refresh_expires_at",
        "status",
        "last_refresh_at",
        "last_used_at",
        "last_error",
        "failure_count",
        "lease_owner",
        "lease_until",
        "reauth_notified_at",
    ]
