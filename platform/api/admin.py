from django.contrib import admin

from api.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Prefix and state only: the digest is useless to a person and stays off the page."""

    list_display = ["prefix", "name", "user", "created", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "user__username"]
    exclude = ["digest"]
    readonly_fields = ["user", "prefix", "created", "last_used_at"]
