"""Reconnect notices over a real SMTP conversation: the connection is marked as told only once
the mail server took the message; until then every sweep sends it again; never twice."""

import time

import pytest
from django.contrib.auth.models import User

from config.celery import app as celery_app
from connectors.base import UpstreamTokens
from tenants.models import Connector
from tenants.services import connector_create
from tests.support.smtp import SmtpServer
from upstream import tasks
from upstream.models import UpstreamConnection
from upstream.services import upstream_connection_store


@pytest.fixture
def lost(acme):
    """acme's shared QuickBooks connection, whose grant just ended; alice (admin) has an email."""
    User.objects.filter(username="alice").update(email="alice@acme.test")
    connector = connector_create(
        tenant=acme["tenant"], kind="quickbooks", slug="books", mode=Connector.Mode.SHARED
    )
    connection = upstream_connection_store(
        connector=connector,
        user=None,
        provider="quickbooks",
        tokens=UpstreamTokens(
            access_token="access",
            refresh_token="refresh",
            expires_in=3600,
            external_account_id="9130",
        ),
    )
    UpstreamConnection.objects.filter(pk=connection.pk).update(
        status=UpstreamConnection.Status.NEEDS_REAUTH, last_error="invalid_grant"
    )
    return connection


@pytest.fixture
def eager():
    """Tasks run where they are queued, as a worker would run them."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def send_by_smtp(settings, server: SmtpServer, timeout: int = 10) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_TIMEOUT = timeout


def told(connection) -> bool:
    return UpstreamConnection.objects.get(pk=connection.pk).reauth_notified_at is not None


def test_a_refused_notice_is_retried_by_the_sweep_and_marked_once_sent(lost, settings, eager):
    with SmtpServer("refuse") as smtp:
        send_by_smtp(settings, smtp)
        tasks.upstream_notify_reauth(lost.pk)  # the worker's first attempt: 451 from the server
        assert smtp.received == [] and not told(lost)
        tasks.upstream_sweep()  # still refused: still not marked
        assert smtp.received == [] and not told(lost)

        smtp.mode = "accept"
        tasks.upstream_sweep()
        assert told(lost)
        [message] = smtp.received
        assert message["To"] == "alice@acme.test"
        assert f"/dashboard/connectors/{lost.connector_id}/connect" in message.get_payload()

        tasks.upstream_sweep()
        tasks.upstream_notify_reauth(lost.pk)
        assert len(smtp.received) == 1, "told once per loss"


def test_a_mail_server_that_never_answers_times_out_and_is_retried(lost, settings, eager):
    with SmtpServer("silent") as smtp:
        send_by_smtp(settings, smtp, timeout=1)
        started = time.monotonic()
        tasks.upstream_notify_reauth(lost.pk)
        assert time.monotonic() - started < 30, "EMAIL_TIMEOUT did not apply"
        assert not told(lost)
        smtp.mode = "accept"
        tasks.upstream_sweep()
        assert told(lost) and len(smtp.received) == 1


def test_a_reconnected_connection_is_not_notified(lost, settings, eager):
    with SmtpServer("accept") as smtp:
        send_by_smtp(settings, smtp)
        UpstreamConnection.objects.filter(pk=lost.pk).update(
            status=UpstreamConnection.Status.ACTIVE
        )
        tasks.upstream_notify_reauth(lost.pk)
        tasks.upstream_sweep()
        assert smtp.received == [] and not told(lost)
