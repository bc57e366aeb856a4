"""The dashboard's "Test connection": the doctor's checks against a connector, as one entry of
its connect trace.

The run is recorded as one ``doctor.run`` event (who ran it, when it started and ended, the
doctor's verdict), and every request the doctor sends names the run in its User-Agent, so the
trace shows the run as one entry with its requests inside, instead of the unfinished client
attempts those requests would otherwise look like (events.trace).
"""

import secrets

from django.utils import timezone

from doctor.checks import run_checks
from doctor.steps import Status, Step
from events.models import Event
from events.services import event_record
from tenants.models import Connector


def connection_test(*, connector: Connector, user, ip: str | None = None) -> list[Step]:
    """Run the doctor against ``connector``'s URL for ``user`` (a tenant admin); recorded."""
    run = secrets.token_hex(8)
    event = event_record(
        kind="doctor.run",
        connector=connector,
        user_id=user.pk,
        ip=ip,
        detail={"run": run, "state": "running", "url": connector.url},
    )
    steps: list[Step] = []
    try:
        steps = run_checks(connector.url, run=run)
    finally:
        if event is not None:
            _finish(event, steps)
    return steps


def _finish(event: Event, steps: list[Step]) -> None:
    counts = {str(status): sum(1 for s in steps if s.status == status) for status in Status}
    failed = [s.title for s in steps if s.status == Status.FAIL]
    event.outcome = Event.Outcome.ERROR if failed or not steps else Event.Outcome.OK
    event.duration_ms = int((timezone.now() - event.created).total_seconds() * 1000)
    event.detail = {
        **event.detail,
        "state": "failed" if event.outcome != Event.Outcome.OK else "passed",
        "counts": counts,
        "failed_steps": failed,
        "warned_steps": [s.title for s in steps if s.status == Status.WARN],
    }
    event.save(update_fields=["outcome", "duration_ms", "detail"])
