"""The doctor against small servers that each break one thing real deployments break.

Each case runs ``manage.py doctor URL --json`` and asserts that exactly the steps a client would
trip on FAIL, with a fix that names the cure, and that the command exits with status 1.
"""

import json
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from doctor.checks import run_checks
from doctor.steps import Status, steps_failed
from tests.doctor.doctor_servers import serving
from tests.support.live import free_port


def doctor(url: str, *args: str) -> tuple[list[dict], CommandError | None]:
    """Run the command; return the steps it printed and the CommandError it ended with."""
    out = StringIO()
    try:
        call_command("doctor", url, "--json", *args, stdout=out)
    except CommandError as exc:
        return json.loads(out.getvalue()), exc
    return json.loads(out.getvalue()), None


def failing(steps: list[dict]) -> dict[str, dict]:
    return {step["name"]: step for step in steps if step["status"] == "FAIL"}


def test_a_correct_server_passes_every_step():
    """The baseline the faults below depart from: without a fault, nothing fails or warns."""
    with serving() as url:
        steps, error = doctor(url)

    assert error is None
    assert {step["status"] for step in steps} == {"PASS"}
    cleanup = next(step for step in steps if step["name"] == "cleanup")
    # This server offers no RFC 7592 deletion: the step says what was left behind.
    assert "left 3 test registration(s) on the server" in cleanup["detail"]


CASES = {
    "no_prm": (
        {"unauthenticated_post", "resource_metadata_path"},
        {
            "unauthenticated_post": 'resource_metadata="{base}/.well-known/'
            'oauth-protected-resource/mcp"',
            "resource_metadata_path": "Serve RFC 9728 metadata at "
            "{base}/.well-known/oauth-protected-resource/mcp",
        },
    ),
    "append_slash": (
        {"unauthenticated_post"},
        {"unauthenticated_post": "APPEND_SLASH"},
    ),
    "html_discovery": (
        {"as_metadata", "as_metadata_2025_03_26"},
        {
            "as_metadata": "Serve the metadata, or a 404, at "
            "{base}/.well-known/oauth-authorization-server: a catch-all route",
            "as_metadata_2025_03_26": "{base}/.well-known/oauth-authorization-server",
        },
    ),
    "issuer_slash": (
        {"issuer"},
        {"issuer": 'Make "issuer" exactly {base}, or list exactly {base}/'},
    ),
    "refuse_claude": (
        {"register_claude"},
        {"register_claude": "Accept https redirect URIs on any host (claude.ai and claude.com)"},
    ),
    "forbidden": (
        {"unauthenticated_post"},
        {"unauthenticated_post": "CSRF middleware rejects the POST"},
    ),
    "wrong_origin": (
        {"resource_metadata_header", "resource_metadata_path", "public_url"},
        {"public_url": "PUBLIC_URL does not match the address clients use: set it to {base}"},
    ),
}


@pytest.mark.parametrize("fault", list(CASES))
def test_the_doctor_fails_exactly_the_broken_step_with_a_fix(fault):
    expected, fixes = CASES[fault]
    with serving(fault) as url:
        steps, error = doctor(url)
    base = url.removesuffix("/mcp")

    failed = failing(steps)
    assert set(failed) == expected, [(s["name"], s["status"], s["detail"]) for s in steps]
    for name, text in fixes.items():
        assert text.format(base=base) in failed[name]["fix"], failed[name]
    assert not [s for s in steps if s["status"] == "WARN"]
    assert error is not None and error.returncode == 1
    assert all(name in str(error) for name in expected)


def test_the_details_say_what_the_client_saw():
    with serving("append_slash") as url:
        steps = {s.name: s for s in run_checks(url)}
    assert steps["unauthenticated_post"].detail == f"HTTP 301 redirect to {url}/"
    assert steps["cors_401"].status == Status.SKIP

    with serving("forbidden") as url:
        steps = {s.name: s for s in run_checks(url)}
    assert steps["unauthenticated_post"].detail.startswith("HTTP 403 instead of 401: ")
    assert "CSRF verification failed" in steps["unauthenticated_post"].detail

    with serving("html_discovery") as url:
        steps = {s.name: s for s in run_checks(url)}
    # The metadata at openid-configuration is still found and checked.
    assert "HTML with status 200" in steps["as_metadata"].detail
    assert steps["as_fields"].status == Status.PASS

    with serving("refuse_claude") as url:
        steps = {s.name: s for s in run_checks(url)}
    assert steps["register_claude"].detail == (
        "Claude's registration refused: HTTP 400 invalid_redirect_uri: Redirect URI host not "
        "allowed: https://claude.ai/api/mcp/auth_callback"
    )
    # Cursor could register, so /authorize is still checked, as Cursor.
    assert steps["authorize"].status == Status.PASS
    assert "as Cursor" in steps["authorize"].detail

    with serving("no_prm") as url:
        steps = {s.name: s for s in run_checks(url)}
    # Without resource metadata a client falls back to the 2025-03-26 rules, which work here.
    assert steps["as_metadata"].status == Status.SKIP
    assert steps["as_metadata_2025_03_26"].status == Status.PASS
    assert "the MCP URL's origin" in steps["issuer"].detail


def test_a_server_without_auth_holding_a_stream_open_is_read_no_further_than_needed():
    """Reading the whole body would hang (keep-alives defeat the read timeout)."""
    with serving("open_stream") as url:
        started = time.monotonic()
        steps = {s.name: s for s in run_checks(url, timeout=3)}
        took = time.monotonic() - started

    assert took < 10  # the stream lasts 30 s

    assert steps["reachable"].status == Status.PASS
    assert steps["unauthenticated_post"].status == Status.FAIL
    assert steps["unauthenticated_post"].detail.startswith(
        "HTTP 200: the server answers without asking for a token"
    )


def test_an_unreachable_server_fails_reachability_and_skips_the_rest():
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there

    steps = run_checks(url, timeout=2)

    statuses = {step.name: step.status for step in steps}
    assert [s.name for s in steps_failed(steps)] == ["reachable"]
    assert "Nothing listens on port" in steps[0].fix
    assert statuses["transport"] == Status.PASS
    rest = {status for name, status in statuses.items() if name not in ("reachable", "transport")}
    assert rest == {Status.SKIP}


def test_the_table_shows_each_failure_with_its_fix_and_the_command_fails():
    out = StringIO()
    with serving("issuer_slash") as url:
        with pytest.raises(CommandError) as raised:
            call_command("doctor", url, stdout=out)

    table = out.getvalue()
    assert raised.value.returncode == 1
    assert str(raised.value) == "1 step(s) failed: issuer"
    issuer_row = next(line for line in table.splitlines() if line.startswith("FAIL  issuer"))
    assert "trailing slash" in table[table.index(issuer_row) :]
    assert 'fix: Make "issuer" exactly' in table
    assert table.rstrip().endswith("FAIL: 1 failed, 0 warning(s), 16 passed, 0 skipped")


def test_a_url_that_is_not_http_is_a_usage_error():
    with pytest.raises(CommandError) as raised:
        call_command("doctor", "claude.ai/mcp", stdout=StringIO())
    assert raised.value.returncode == 2
    assert "absolute http(s) URL" in str(raised.value)


def test_the_loopback_note_and_the_https_warning():
    """A public http URL is a WARN (not a FAIL): checked without any network access."""
    from doctor.findings import Findings
    from doctor.first_request import check_transport

    warning = check_transport(Findings(url="http://192.0.2.10/mcp", http=None))
    assert warning.status == Status.WARN
    assert "plain http" in warning.detail and "port 443" in warning.fix
    odd_port = check_transport(Findings(url="https://192.0.2.10:8443/mcp", http=None))
    assert "Claude connects only to port 443" in odd_port.detail
    loopback = check_transport(Findings(url="http://127.0.0.1:1/mcp", http=None))
    assert loopback.status == Status.PASS and "loopback" in loopback.detail
