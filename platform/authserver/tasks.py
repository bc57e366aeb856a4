"""Periodic housekeeping of the authorization server and the event trace."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import clear_expired

from authserver.models import RefreshGraceAnswer, UsedAuthorizationCode
from authserver.registration import registrations_prune
from events.models import AuditRecord, Event


def housekeeping_run() -> dict:
    """Expired tokens and grants (DOT's cleartokens), sealed refresh answers past their grace
    window, unused registrations, old events and audit records."""
    clear_expired()
    now = timezone.now()
    registrations = registrations_prune(now=now)
    RefreshGraceAnswer.objects.filter(expires__lte=now).delete()
    codes, _ = UsedAuthorizationCode.objects.filter(used__lt=now - timedelta(days=1)).delete()
    events, _ = Event.objects.filter(
        created__lt=now - timedelta(days=settings.EVENT_RETENTION_DAYS)
    ).delete()
    audit, _ = AuditRecord.objects.filter(
        created__lt=now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    ).delete()
    return {
        "registrations": registrations,
        "used_codes": codes,
        "events": events,
        "audit_records": audit,
    }


@shared_task
def housekeeping() -> dict:
    return housekeeping_run()
