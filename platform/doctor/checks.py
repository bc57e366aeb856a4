"""``run_checks(url)``: every step a client takes against an MCP URL, in the clients' order.

Plain functions over one httpx client, so the management command and the dashboard's "Test
connection" button run the same checks.
"""

from collections.abc import Callable, Sequence
from functools import partial
from urllib.parse import urlsplit

import httpx

from doctor import clients, discovery, first_request
from doctor.findings import Findings
from doctor.steps import Status, Step, Verdict
from doctor.wire import doctor_http_client

Check = Callable[[Findings], Verdict]


def step_catalogue(redirect_uris: Sequence[str] = ()) -> list[tuple[str, str, Check, bool]]:
    """(name, title, check, needs an answer from the server) for each step, in order."""
    registrations = [
        (
            "register_claude",
            "DCR as Claude",
            partial(clients.check_registration, shape=clients.CLAUDE),
        ),
        (
            "register_cursor",
            "DCR as Cursor",
            partial(clients.check_registration, shape=clients.CURSOR),
        ),
        (
            "register_vscode",
            "DCR as VS Code",
            partial(clients.check_registration, shape=clients.VSCODE),
        ),
    ]
    if redirect_uris:
        shape = clients.custom_shape(list(redirect_uris))
        registrations.append(
            (
                "register_custom",
                "DCR with --redirect-uri",
                partial(clients.check_registration, shape=shape),
            )
        )
    steps = [
        ("reachable", "Reachability", first_request.check_reachable),
        ("transport", "TLS, port and address", first_request.check_transport),
        (
            "unauthenticated_post",
            "401 to a token-less initialize",
            first_request.check_unauthenticated_post,
        ),
        (
            "resource_metadata_header",
            "Resource metadata at the 401's URL",
            discovery.check_resource_metadata_header,
        ),
        (
            "resource_metadata_path",
            "Resource metadata at the path-inserted URL",
            discovery.check_resource_metadata_path,
        ),
        (
            "as_metadata",
            "Authorization-server metadata (2025-06-18 on)",
            discovery.check_as_metadata,
        ),
        (
            "as_metadata_2025_03_26",
            "Authorization server at the origin root (2025-03-26)",
            discovery.check_as_metadata_2025_03_26,
        ),
        ("as_fields", "Metadata fields clients require", discovery.check_as_fields),
        ("issuer", "Issuer equals the URL the client built", discovery.check_issuer),
        ("public_url", "Advertised URLs match the address used", discovery.check_public_url),
        *registrations,
        ("authorize", "/authorize answers a well-formed request", clients.check_authorize),
        ("cors_preflight", "CORS preflights", clients.check_cors_preflight),
        ("cors_401", "CORS on the 401", clients.check_cors_401),
        ("cleanup", "Cleanup", clients.check_cleanup),
    ]
    standalone = {"transport"}
    return [(name, title, check, name not in standalone) for name, title, check in steps]


def run_checks(
    url: str,
    *,
    http: httpx.Client | None = None,
    redirect_uris: Sequence[str] = (),
    timeout: float = 10.0,
    guarded: bool = False,
    run: str = "",
) -> list[Step]:
    """Check ``url`` as Claude, Cursor, VS Code and each spec generation would; one Step each.

    Sends no credentials; the only state left behind is the test registrations the server
    would not let the doctor delete (the cleanup step says which). ``guarded`` (a URL a tenant
    chose): only public addresses or OUTBOUND_ALLOWED_NETWORKS are connected to. ``run`` names
    the run in every request's User-Agent (see ``doctor.runs``). Raises ValueError for a URL or
    redirect URI that is not an absolute http(s) URL.
    """
    _require_http_url(url, "the MCP URL")
    for uri in redirect_uris:
        if not urlsplit(uri).scheme or not (urlsplit(uri).netloc or urlsplit(uri).path):
            raise ValueError(f"--redirect-uri must be an absolute URI, not {uri!r}")
    own_client = http is None
    http = http or doctor_http_client(timeout=timeout, guarded=guarded, run=run)
    findings = Findings(url=url, http=http)
    steps: list[Step] = []
    try:
        for name, title, check, needs_answer in step_catalogue(redirect_uris):
            if needs_answer and name != "reachable" and findings.unauthenticated is None:
                verdict = Verdict(Status.SKIP, "the server did not answer (see reachable)")
            else:
                verdict = _run(check, findings)
            steps.append(Step(name, title, verdict.status, verdict.detail, verdict.fix))
    finally:
        if own_client:
            http.close()
    return steps


def _run(check: Check, findings: Findings) -> Verdict:
    try:
        return check(findings)
    except Exception as exc:  # one broken step must not hide the others' results
        return Verdict(
            Status.FAIL,
            f"the doctor could not complete this step: {type(exc).__name__}: {exc}",
            "Unexpected answer from the server; run with --json and see the other steps.",
        )


def _require_http_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL, not {url!r}")
