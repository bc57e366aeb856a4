from django.contrib import admin

from tenants.models import ApiKey, Connector, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class ConnectorInline(admin.TabularInline):
    model = Connector
    extra = 0
    fields = ["slug", "kind", "name", "mode", "enabled"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "enabled", "created"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline, ConnectorInline]


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "mode", "enabled", "url"]
    list_filter = ["kind", "mode", "enabled"]
    search_fields = ["slug", "tenant__slug"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["tenant", "user", "role"]
    list_filter = ["role"]
    search_fields = ["tenant__slug", "user__username"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Prefix and state only: the digest is useless to a person and stays off the page."""

    list_display = ["prefix", "name", "user", "created", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "user__username"]
    exclude = ["digest"]
    readonly_fields = ["user", "prefix", "created", "last_used_at"]
