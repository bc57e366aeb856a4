"""The doctor against this platform, live: every step passes, and it leaves nothing behind."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from oauth2_provider.models import AccessToken, Application, Grant

from doctor.checks import run_checks
from doctor.steps import Status
from events.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

EVERY_STEP = [
    "reachable",
    "transport",
    "unauthenticated_post",
    "resource_metadata_header",
    "resource_metadata_path",
    "as_metadata",
    "as_metadata_2025_03_26",
    "as_fields",
    "issuer",
    "public_url",
    "register_claude",
    "register_cursor",
    "register_vscode",
    "authorize",
    "cors_preflight",
    "cors_401",
    "cleanup",
]


def test_every_step_passes_against_the_platform_and_nothing_is_left(live_url, acme):
    url = acme["connector"].url

    steps = run_checks(url)

    assert [step.name for step in steps] == EVERY_STEP
    not_passed = [(s.name, s.status, s.detail) for s in steps if s.status != Status.PASS]
    assert not_passed == []
    by_name = {step.name: step for step in steps}
    # Loopback http is no problem for the clients that can reach it; the step says so.
    assert "loopback" in by_name["transport"].detail
    assert by_name["issuer"].detail.startswith(f"issuer {live_url} ")
    assert "redirects to the sign-in page" in by_name["authorize"].detail
    assert "deleted the 3 test registration(s) (RFC 7592)" in by_name["cleanup"].detail
    # A browser origin the platform does not list is refused (403): the doctor says so.
    assert "HTTP 403 for Origin http://localhost:6274" in by_name["cors_401"].detail
    assert "refuses Origin http://localhost:6274" in by_name["cors_preflight"].detail


def test_cors_steps_see_the_headers_when_the_browser_origin_is_allowed(live_url, acme, settings):
    settings.EXTRA_ALLOWED_ORIGINS = ["http://localhost:6274"]

    by_name = {step.name: step for step in run_checks(acme["connector"].url)}

    assert by_name["cors_401"].status == Status.PASS
    assert "Access-Control-Allow-Origin *" in by_name["cors_401"].detail
    assert "refuses" not in by_name["cors_preflight"].detail
    # The doctor registered three clients (the trace says so) and removed them again.
    registered = Event.objects.filter(kind="oauth.register", status_code=201)
    assert registered.count() == 3
    assert not Application.objects.exists()
    assert not AccessToken.objects.exists()
    assert not Grant.objects.exists()


def test_the_command_exits_zero_and_prints_json_steps(live_url, acme):
    out = StringIO()

    call_command(
        "doctor",
        acme["connector"].url,
        "--json",
        "--redirect-uri",
        "http://127.0.0.1:8765/callback",
        stdout=out,
    )  # returns: no SystemExit, no CommandError

    steps = json.loads(out.getvalue())
    assert [s["name"] for s in steps] == [*EVERY_STEP[:13], "register_custom", *EVERY_STEP[13:]]
    assert {s["status"] for s in steps} == {"PASS"}
    assert set(steps[0]) == {"name", "title", "status", "detail", "fix"}
    authorize = next(s for s in steps if s["name"] == "authorize")
    assert "redirect_uri http://127.0.0.1:8765/callback" in authorize["detail"]
    assert not Application.objects.exists()
