"""Thin Celery tasks: they take ids, call the refresh service, and own their retries."""

import logging
import random

from celery import shared_task
from celery.utils import uuid
from celery.worker import state as worker_state
from django.conf import settings
from django.db import transaction

# The platform's Celery app, made the current one before a task of this module is sent: the web
# process loads Celery only when it first sends one (upstream_connection_reauth_needed), so
# nothing else has loaded the app there, and a task sent without it would go to Celery's
# default broker.
import config.celery  # noqa: F401
from connectors.base import UpstreamReauthRequired, UpstreamUnavailable
from events.services import event_record
from upstream.models import UpstreamConnection
from upstream.refresh import (
    upstream_connection_refresh,
    upstream_connections_claim_due,
    upstream_connections_in_use,
)
from upstream.services import (
    upstream_connection_notify_reauth,
    upstream_connections_awaiting_notice,
)

log = logging.getLogger(__name__)


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never sooner than the provider asked (bounded)."""
    backoff = min(600.0, settings.UPSTREAM_RETRY_BASE_SECONDS * (2**attempt))
    return min(900.0, max(retry_after or 0.0, random.uniform(backoff / 2, backoff)))


@shared_task(bind=True, max_retries=None)
def upstream_refresh(self, connection_id: int, force: bool = False) -> None:
    """Refresh one connection, retrying a transient failure with backoff (its own attempts)."""
    try:
        upstream_connection_refresh(connection_id=connection_id, force=force)
    except UpstreamConnection.DoesNotExist:
        return
    except UpstreamReauthRequired:
        return  # the service marked it needs_reauth and told the admins; nothing to retry
    except UpstreamUnavailable as exc:
        if _gave_up(connection_id, attempt=self.request.retries):
            return
        raise self.retry(
            exc=exc, countdown=retry_delay(self.request.retries, exc.retry_after)
        ) from exc


@shared_task(bind=True)
def upstream_refresh_batch(self, connection_ids: list[int], force: bool = False) -> None:
    """Refresh a few connections one after the other in this worker thread (what the sweep and
    the start-up check send: Celery's cost per message is paid once per batch, not once per
    refresh). Each connection is on its own: a transient failure sends that one alone back to
    the queue as an ``upstream_refresh`` with its backoff (its second attempt), and a dead
    grant or a deleted connection ends only its own refresh. A worker asked to stop (warm
    shutdown) finishes the refresh it is in and hands the batch's unstarted ids back to the
    queue."""
    kwargs = {"force": True} if force else {}
    for position, connection_id in enumerate(connection_ids):
        if _worker_stopping():
            self.apply_async((connection_ids[position:],), kwargs, **_same_queue(self.request))
            return
        try:
            upstream_connection_refresh(connection_id=connection_id, force=force)
        except (UpstreamConnection.DoesNotExist, UpstreamReauthRequired):
            continue
        except UpstreamUnavailable as exc:
            if _gave_up(connection_id, attempt=0):
                continue
            upstream_refresh.apply_async(
                (connection_id,),
                kwargs,
                countdown=retry_delay(0, exc.retry_after),
                retries=1,
                **_same_queue(self.request),
            )
        except Exception:
            # A bug in one refresh (the service gave its lease back) must not cost the rest
            # of the batch theirs; the sweep finds this one again.
            log.exception("refresh failed", extra={"connection_id": connection_id})


def _gave_up(connection_id: int, *, attempt: int) -> bool:
    """After ``attempt`` retries a transient failure is left to the next sweep (logged)."""
    if attempt < settings.UPSTREAM_RETRY_MAX:
        return False
    log.warning("giving up on refresh until the next sweep", extra={"connection_id": connection_id})
    return True


def _same_queue(request) -> dict:
    """Routing to the queue the running message came from, as Celery's own retry does, so a
    retry or a handed-back batch reaches the workers of that queue (nothing when eager)."""
    info = request.delivery_info or {}
    exchange, routing_key = info.get("exchange"), info.get("routing_key")
    if not routing_key:
        return {}
    if exchange == "":
        return {"queue": routing_key}
    return {"exchange": exchange, "routing_key": routing_key}


def _worker_stopping() -> bool:
    """This worker process was asked to shut down (Celery sets these on SIGTERM and SIGINT; a
    warm shutdown's exit code is 0, hence the identity tests, as in Celery's own)."""
    flags = (worker_state.should_stop, worker_state.should_terminate)
    return any(flag is not None and flag is not False for flag in flags)


@shared_task
def upstream_notify_reauth(connection_id: int) -> None:
    """Tell the admins a connection needs a reconnect. A failed send is not retried here: the
    connection stays unmarked, and every sweep queues it again until a send succeeds."""
    try:
        upstream_connection_notify_reauth(connection_id=connection_id)
    except Exception as exc:  # SMTP refused, timed out, unreachable, or any backend's error
        log.warning(
            "reconnect notice not sent; the next sweep retries it",
            extra={"connection_id": connection_id, "error": f"{exc.__class__.__name__}: {exc}"},
        )


# A message takes at most this share of the ids a publish has left (and at most
# UPSTREAM_REFRESH_BATCH): a sweep of a few connections goes out one per message, to as many
# worker threads as there are, and a long one ends with smaller messages, so that the threads
# taking its last ones finish close together (bench/refresh_throughput.py: 16 measured a little
# better than 32 and than none).
_SPREAD = 16


def _batches(ids: list[int], size: int) -> list[list[int]]:
    """``ids`` cut in order into messages of at most ``size``, smaller toward the end."""
    batches, start = [], 0
    while start < len(ids):
        step = min(size, max(1, -(-(len(ids) - start) // _SPREAD)))
        batches.append(ids[start : start + step])
        start += step
    return batches


def _publish_refreshes(ids: list[int], *, force: bool = False) -> None:
    """The ids as ``upstream_refresh_batch`` messages of at most UPSTREAM_REFRESH_BATCH ids each,
    in order (the most urgent first), sent in pipelined batches (kombu's ``producer.batch()``:
    on Redis one round trip per batch instead of one per message; other transports send each
    message at once).

    Celery builds the first message as ``apply_async`` would (routing, headers, the parent
    task's ids); the others are that message with their own task id and argument, handed to the
    same sender (publish signals included). Celery's per-call setup (option merging, routing,
    configuration lookups) was more than half of the sweep's time for 10,000 due connections.
    """
    if not ids:
        return
    batches = _batches(ids, settings.UPSTREAM_REFRESH_BATCH)
    task = upstream_refresh_batch
    app, name = task.app, task.name
    amqp = app.amqp
    kwargs = {"force": True} if force else {}
    if app.conf.task_always_eager:  # tests: each task runs here and now, as apply_async does
        for batch in batches:
            task.apply_async((batch,), kwargs)
        return
    parent = app.current_worker_task
    root_id = parent_id = None
    if parent:
        root_id, parent_id = parent.request.root_id or parent.request.id, parent.request.id
    options = amqp.router.route({}, name, (batches[0],), kwargs, task)
    template_id = uuid()
    template = amqp.create_task_message(
        template_id,
        name,
        (batches[0],),
        kwargs,
        reply_to=app.thread_oid,
        create_sent_event=app.conf.task_send_sent_event,
        root_id=root_id,
        parent_id=parent_id,
        ignore_result=task.ignore_result,
    )
    with app.producer_or_acquire() as producer, producer.batch():
        for batch in batches:
            task_id = uuid()
            headers = {
                **template.headers,
                "id": task_id,
                "root_id": root_id or task_id,
                "argsrepr": repr((batch,)),
            }
            properties = {**template.properties, "correlation_id": task_id}
            body = ((batch,), kwargs, template.body[2])
            sent_event = template.sent_event and {
                **template.sent_event,
                "uuid": task_id,
                "root_id": headers["root_id"],
                "args": headers["argsrepr"],
            }
            message = template._replace(
                headers=headers, properties=properties, body=body, sent_event=sent_event
            )
            amqp.send_task_message(producer, name, message, **options)


@shared_task
def upstream_sweep() -> int:
    """Enqueue the due connections' refreshes (a few per message), and the reconnect notices not
    sent yet; records when the sweep last ran."""
    ids = upstream_connections_claim_due()
    transaction.on_commit(lambda: _publish_refreshes(ids))
    for connection_id in upstream_connections_awaiting_notice():
        transaction.on_commit(lambda pk=connection_id: upstream_notify_reauth.delay(pk))
    # The sweep's own heartbeat: /readyz and the dashboard read the newest one.
    event_record(kind="upstream.sweep", detail={"enqueued": len(ids)})
    return len(ids)


@shared_task
def upstream_check_provider(provider: str) -> int:
    """Ask ``provider`` about each of its connections still counted usable (one forced refresh
    each), so a grant it no longer knows shows as needs_reauth, with the provider's reason,
    before anyone calls a tool. ``serve`` queues this when it (re)started that provider's
    emulator; a deployment against the real provider leaves it to the sweep."""
    ids = upstream_connections_in_use(provider=provider)
    _publish_refreshes(ids, force=True)
    event_record(kind="upstream.startup_check", detail={"provider": provider, "checked": len(ids)})
    return len(ids)
