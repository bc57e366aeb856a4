"""The connect trace groups events per client and attempt, names the step where an attempt
stopped, and says what to check. Events are written as the platform writes them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from events.models import Event
from events.services import event_record
from events.trace import connect_trace

pytestmark = pytest.mark.django_db


def _flow(connector, *, ip, client_id, upto, user=None, failure=None, ago=timedelta(minutes=5)):
    """Write the events a client of the current spec causes, up to the step ``upto``; the
    step named by ``failure`` (kind, detail) is recorded as failed instead."""
    steps = [
        ("mcp.unauthenticated", "", {"error": "unauthorized"}, 401),
        ("discovery.resource_metadata", "", {}, 200),
        ("discovery.as_metadata", "", {"path": "/.well-known/oauth-authorization-server"}, 200),
        ("oauth.register", client_id, {"client_name": "Cursor"}, 201),
        ("oauth.authorize", client_id, {"resource_sent": True}, 200),
        ("oauth.consent", client_id, {}, 302),
        ("oauth.code_issued", client_id, {"redirect_host": "cursor.sh"}, 302),
        ("oauth.token", client_id, {"grant_type": "authorization_code"}, 200),
        ("mcp.first_call", client_id, {"rpc": "initialize"}, 200),
    ]
    events = []
    for kind, cid, detail, status in steps:
        outcome = "denied" if kind == "mcp.unauthenticated" else "ok"
        if failure and kind == failure[0]:
            outcome, detail, status = "error", failure[1], failure[2]
        on_connector = kind not in ("discovery.as_metadata", "oauth.register")
        events.append(
            event_record(
                kind=kind,
                outcome=outcome,
                connector=connector if on_connector else None,
                client_id=cid,
                user_id=user.pk if user and kind.startswith("oauth.") and cid else None,
                ip=ip,
                status_code=status,
                detail=detail,
            )
        )
        if kind == upto or (failure and kind == failure[0]):
            break
    # Written in order, a second apart, some minutes ago (no longer "in progress").
    start = timezone.now() - ago
    for n, event in enumerate(events):
        Event.objects.filter(pk=event.pk).update(created=start + timedelta(seconds=n))


@pytest.fixture
def acme(db):
    """Like the shared fixture of that name, without a live server's committed data."""
    from tenants.services import connector_create, member_add, tenant_create

    tenant = tenant_create(slug="acme", name="Acme Inc")
    member_add(tenant=tenant, username="bob")
    other = tenant_create(slug="globex", name="Globex")
    member_add(tenant=other, username="eve")
    return {
        "connector": connector_create(tenant=tenant, kind="echo", slug="echo"),
        "other_connector": connector_create(tenant=other, kind="echo", slug="echo"),
    }


@pytest.fixture
def echo(acme):
    return acme["connector"]


def test_a_complete_connection_is_one_connected_attempt(echo):
    _flow(echo, ip="10.0.0.1", client_id="c1", upto="mcp.first_call")
    [attempt] = connect_trace(echo).attempts
    assert attempt.state == "connected" and attempt.client_id == "c1"
    assert attempt.client_name == "Cursor"  # from the registration
    assert [s.step for s in attempt.steps] == [
        "probe",
        "resource_metadata",
        "as_metadata",
        "register",
        "authorize",
        "consent",
        "code",
        "token",
        "first_call",
    ]
    assert not attempt.hint


@pytest.mark.parametrize(
    ("upto", "stopped_at", "hint"),
    [
        ("mcp.unauthenticated", "probe", "never fetched protected-resource metadata"),
        ("discovery.resource_metadata", "resource_metadata", "never fetched the authorization"),
        ("discovery.as_metadata", "as_metadata", "never registered"),
        ("oauth.register", "register", "never opened /authorize"),
        ("oauth.authorize", "authorize", "never answered"),
        ("oauth.code_issued", "code", "never exchanged it"),
        ("oauth.token", "token", "never called"),
    ],
)
def test_an_attempt_that_stopped_names_the_step_and_what_to_check(echo, upto, stopped_at, hint):
    _flow(echo, ip="10.0.0.2", client_id="c2", upto=upto)
    [attempt] = connect_trace(echo).attempts
    assert attempt.state == "stopped"
    assert attempt.stopped_at == stopped_at
    assert hint in attempt.hint


def test_a_recent_stop_may_still_be_in_progress(echo):
    _flow(echo, ip="10.0.0.3", client_id="c3", upto="oauth.register", ago=timedelta(seconds=10))
    [attempt] = connect_trace(echo).attempts
    assert attempt.state == "in_progress" and attempt.stopped_at == "register"


@pytest.mark.parametrize(
    ("failure", "stopped_at", "hint"),
    [
        (("oauth.token", {"error": "invalid_grant"}, 400), "token", "code_verifier did not match"),
        (("oauth.token", {"error": "invalid_client"}, 401), "token", "auth method it registered"),
        (("oauth.consent", {"reason": "user_denied"}, 302), "consent", "clicked Deny"),
        (
            (
                "oauth.consent",
                {"error": "temporarily_unavailable", "reason": "The account needs a reconnect."},
                302,
            ),
            "consent",
            "The account needs a reconnect. The member was warned before Allow",
        ),
        (("oauth.register", {"error": "invalid_redirect_uri"}, 400), "register", "https or"),
    ],
)
def test_a_failed_step_is_where_the_attempt_failed(echo, failure, stopped_at, hint):
    _flow(echo, ip="10.0.0.4", client_id="c4", upto="mcp.first_call", failure=failure)
    attempts = connect_trace(echo).attempts
    attempt = next(a for a in attempts if a.steps[-1].failed)
    assert attempt.state == "failed" and attempt.stopped_at == stopped_at
    assert hint in attempt.hint
    assert attempt.steps[-1].error.startswith(failure[1].get("error", ""))


def test_a_non_member_is_named_with_the_way_out(echo, django_user_model):
    eve = django_user_model.objects.get(username="eve")
    _flow(
        echo,
        ip="10.0.0.5",
        client_id="c5",
        upto="oauth.authorize",
        user=eve,
        failure=("oauth.authorize", {"reason": "not_member"}, 403),
    )
    [attempt] = connect_trace(echo).attempts
    assert attempt.state == "failed"
    assert "eve is not a member of Acme Inc" in attempt.hint


def test_clients_are_kept_apart_and_filters_apply(echo, django_user_model):
    bob = django_user_model.objects.get(username="bob")
    _flow(echo, ip="10.0.0.6", client_id="good", upto="mcp.first_call", user=bob)
    _flow(echo, ip="10.0.0.7", client_id="bad", upto="oauth.code_issued")
    trace = connect_trace(echo)
    assert {(a.client_id, a.state) for a in trace.attempts} == {
        ("good", "connected"),
        ("bad", "stopped"),
    }
    only_bad = connect_trace(echo, client_id="bad").attempts
    assert [a.client_id for a in only_bad] == ["bad"]
    probes = connect_trace(echo, kind="mcp.unauthenticated").attempts
    assert all([s.event.kind for s in a.steps] == ["mcp.unauthenticated"] for a in probes)
    assert len(probes) == 2
    # A member sees the attempts their account took part in, and no one else's.
    assert [a.client_id for a in connect_trace(echo, user=bob).attempts] == ["good"]


def test_a_revoked_clients_next_call_is_explained(echo):
    _flow(echo, ip="10.0.0.8", client_id="c8", upto="mcp.first_call")
    event_record(
        kind="mcp.rejected",
        outcome="denied",
        connector=echo,
        client_id="c8",
        status_code=401,
        detail={
            "error": "invalid_token",
            "error_description": "The access token is unknown or was revoked",
        },
    )
    [attempt] = connect_trace(echo).attempts
    assert attempt.state == "connected"
    assert "revoked" in attempt.hint


def test_another_tenants_events_never_enter_the_trace(echo, acme):
    _flow(acme["other_connector"], ip="10.0.0.9", client_id="theirs", upto="mcp.first_call")
    assert connect_trace(echo).attempts == []


def test_a_registration_from_a_shared_address_stays_with_its_own_tenant(echo, acme):
    # One client vendor's servers: the same address probes acme and registers for globex.
    _flow(echo, ip="10.0.1.1", client_id="unused", upto="mcp.unauthenticated")
    _flow(acme["other_connector"], ip="10.0.1.1", client_id="globex-client", upto="oauth.token")
    for attempt in connect_trace(echo).attempts:
        assert attempt.client_id != "globex-client"
        assert all(s.event.client_id != "globex-client" for s in attempt.steps)


def test_text_a_client_wrote_is_never_a_hint(echo):
    """A failed first call whose error the caller controls (a tool echoing its arguments): the
    hint stays our own words; the text appears only as the step's returned error."""
    bait = "Your connector is broken: re-enter your QuickBooks password at https://evil.example"
    _flow(
        echo,
        ip="10.0.0.9",
        client_id="c9",
        upto="mcp.first_call",
        failure=("mcp.first_call", {"rpc": "tools/call:echo", "error": bait}, 200),
    )
    attempts = connect_trace(echo).attempts
    attempt = next(a for a in attempts if a.steps and a.steps[-1].failed)
    assert attempt.state == "failed"
    assert "evil.example" not in attempt.hint
    assert attempt.hint


def test_an_attempt_whose_401_was_written_late_keeps_its_times_in_order(echo):
    """The gateway records its 401 after sending it, so the metadata fetch it provoked can be
    written first; the attempt still starts at its first row and ends at its last."""
    _flow(echo, ip="10.0.0.9", client_id="c9", upto="discovery.as_metadata")
    probe = Event.objects.get(kind="mcp.unauthenticated")
    metadata = Event.objects.get(kind="discovery.resource_metadata")
    Event.objects.filter(pk=probe.pk).update(created=metadata.created + timedelta(seconds=0.5))

    [attempt] = connect_trace(echo).attempts
    assert attempt.steps[0].event.kind == "mcp.unauthenticated"  # the client's order
    assert attempt.started == metadata.created
    assert attempt.last == Event.objects.get(kind="discovery.as_metadata").created
    assert attempt.started <= attempt.last


def _doctor_run(connector, user, *, run="ab12", agent_run=None, state="passed"):
    """What doctor.runs writes: the doctor.run row and requests naming the run."""
    from doctor.wire import user_agent

    start = timezone.now() - timedelta(minutes=3)
    event_record(
        kind="doctor.run",
        connector=connector,
        user_id=user.pk,
        ip="10.0.0.5",
        outcome="ok" if state == "passed" else "error",
        detail={"run": run, "state": state, "counts": {"PASS": 17}, "failed_steps": []},
    )
    agent = user_agent(agent_run if agent_run is not None else run)
    for kind, on_connector, cid, status in (
        ("mcp.unauthenticated", True, "", 401),
        ("discovery.resource_metadata", True, "", 200),
        ("discovery.as_metadata", False, "", 200),
        ("oauth.register", False, "doc-claude", 201),
        ("oauth.register", False, "doc-cursor", 201),
        ("oauth.register", False, "doc-vscode", 201),
    ):
        event_record(
            kind=kind,
            outcome="denied" if status == 401 else "ok",
            connector=connector if on_connector else None,
            client_id=cid,
            ip="10.0.0.5",
            user_agent=agent,
            status_code=status,
            detail={"client_name": "Claude (connection doctor)"} if cid else {},
        )
    for n, event in enumerate(Event.objects.order_by("id")):
        Event.objects.filter(pk=event.pk).update(created=start + timedelta(seconds=n))


def test_a_test_connection_run_is_one_entry(echo, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    _doctor_run(echo, alice)

    [run] = connect_trace(echo).attempts
    assert run.test_run is not None and run.state == "passed"
    assert [s.event.kind for s in run.steps][:2] == ["doctor.run", "mcp.unauthenticated"]
    assert len(run.steps) == 7 and run.started <= run.last
    assert run.client_name == "" and "17 checks passed" in run.hint


def test_requests_naming_no_recorded_run_stay_ordinary_attempts(echo, django_user_model):
    """A client cannot hide its requests in a test run by copying the doctor's User-Agent."""
    alice = django_user_model.objects.create_user("alice")
    _doctor_run(echo, alice, agent_run="forged")

    attempts = connect_trace(echo).attempts
    [run] = [a for a in attempts if a.test_run is not None]
    assert [s.event.kind for s in run.steps] == ["doctor.run"]
    assert len(attempts) > 1
