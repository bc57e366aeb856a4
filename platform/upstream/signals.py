"""Ending a membership, however it happens (service, admin, user deletion), ends the member's
per-user upstream connections and the MCP tokens that used them. And the authorization server
learns whether a connector's shared upstream account is usable before it asks for consent."""

from django.conf import settings
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from authserver.availability import connector_unavailable
from tenants.models import Membership
from upstream.selectors import shared_upstream_problem
from upstream.services import upstream_connections_end_for_member


@receiver(pre_delete, sender=Membership)
def membership_ending(sender, instance: Membership, **kwargs) -> None:
    upstream_connections_end_for_member(user_id=instance.user_id, tenant_id=instance.tenant_id)


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL)
def user_deleting(sender, instance, **kwargs) -> None:
    upstream_connections_end_for_member(user_id=instance.pk)


@receiver(connector_unavailable)
def shared_upstream_missing(sender, *, connector, user, **kwargs) -> str:
    return shared_upstream_problem(connector=connector)
