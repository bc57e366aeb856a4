"""Ending a membership, however it happens (service, admin, user deletion), ends the member's
MCP tokens and consents for the tenant's connectors."""

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from authserver.services import mcp_tokens_revoke
from tenants.models import Connector, Membership


@receiver(pre_delete, sender=Membership)
def membership_ending(sender, instance: Membership, **kwargs) -> None:
    for connector_id in Connector.objects.filter(tenant_id=instance.tenant_id).values_list(
        "pk", flat=True
    ):
        mcp_tokens_revoke(connector_id=connector_id, user_id=instance.user_id, forget_consents=True)
