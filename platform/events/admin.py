from django.contrib import admin

from events.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["created", "kind", "outcome", "connector", "client_id", "status_code"]
    list_filter = ["kind", "outcome"]
    search_fields = ["client_id", "connector__slug", "tenant__slug"]
    readonly_fields = [f.name for f in Event._meta.fields]
