"""The connect trace: a connector's events grouped per client and per connect attempt.

A client's first requests carry no client id (the unauthenticated probe, the metadata
fetches): they are tied to the attempt by the address they came from (clients send their OAuth
requests with another user agent than their MCP requests, or none), until the registration
from that same address names the client. Requests made by the browser
(authorize, consent, the upstream hop) carry the client id. An attempt that never reached its
first MCP call shows the step where it stopped and a hint in plain words.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import Application

from connectors.base import get_kind
from events.models import Event
from tenants.models import Connector

# The connect steps, in the order a client of the current spec takes them.
STEPS: list[tuple[str, str, tuple[str, ...]]] = [
    ("probe", "Unauthenticated request (401)", ("mcp.unauthenticated",)),
    ("resource_metadata", "Protected-resource metadata", ("discovery.resource_metadata",)),
    ("as_metadata", "Authorization-server metadata", ("discovery.as_metadata",)),
    ("register", "Registration (DCR) or client ID document", ("oauth.register",)),
    ("authorize", "Authorize (sign-in)", ("oauth.authorize",)),
    ("consent", "Consent", ("oauth.consent",)),
    ("upstream", "Upstream provider hop", ("upstream.hop", "upstream.callback")),
    ("code", "Authorization code issued", ("oauth.code_issued",)),
    ("token", "Token exchange", ("oauth.token",)),
    ("first_call", "First MCP call", ("mcp.first_call",)),
]
STEP_OF_KIND = {kind: name for name, _label, kinds in STEPS for kind in kinds}
STEP_LABEL = {name: label for name, label, _kinds in STEPS}
STEP_INDEX = {name: i for i, (name, _label, _kinds) in enumerate(STEPS)}
ACTIVITY_KINDS = (
    "mcp.call",
    "mcp.calls",
    "mcp.rejected",
    "mcp.rate_limited",
    "oauth.refresh",
    "oauth.client_revoked",
)
KIND_LABEL = {
    **{kind: STEP_LABEL[step] for kind, step in STEP_OF_KIND.items()},
    "upstream.hop": "Sent to the upstream provider",
    "upstream.callback": "Back from the upstream provider",
    "mcp.call": "MCP call",
    "mcp.calls": "MCP calls (counted per minute)",
    "mcp.rejected": "MCP request rejected",
    "mcp.rate_limited": "MCP request over a rate limit",
    "oauth.refresh": "Token refresh",
    "oauth.client_revoked": "Client revoked",
    "upstream.connected": "Upstream account connected",
    "upstream.refresh": "Upstream token refresh",
    "upstream.reauth_needed": "Upstream needs reconnecting",
    "upstream.reauth_notified": "Admins emailed to reconnect",
    "upstream.disconnected": "Upstream disconnected",
    "doctor.run": "Test connection",
}
KNOWN_KINDS = sorted(KIND_LABEL)

# The doctor's User-Agent names its run (doctor.wire.user_agent).
DOCTOR_AGENT = "(mcp-connection-doctor"
# A test run still "running" after this long never finished.
TEST_RUN_LIMIT = timedelta(minutes=5)
# How long anonymous requests from one address stay tied to each other.
ANONYMOUS_WINDOW = timedelta(minutes=10)
# An attempt idle this long without finishing is "stopped", not "in progress".
IN_PROGRESS_WINDOW = timedelta(minutes=2)
TRACE_WINDOW = timedelta(days=7)
PROBE_SLACK = timedelta(seconds=1)
MAX_EVENTS = 3000


@dataclass
class Step:
    """One event as the trace shows it."""

    event: Event
    step: str  # a STEPS name, or "activity"
    label: str
    error: str
    summary: str

    @property
    def failed(self) -> bool:
        # The first 401 is how every client learns where to sign in: expected, not a failure.
        return self.event.outcome != Event.Outcome.OK and self.event.kind != "mcp.unauthenticated"

    @property
    def expected_refusal(self) -> bool:
        return self.event.kind == "mcp.unauthenticated"


@dataclass
class Attempt:
    client_id: str
    origin: str  # the address the client's first requests came from
    steps: list[Step] = field(default_factory=list)
    client_name: str = ""
    state: str = ""  # connected, failed, stopped, in_progress
    reached: str = ""  # the furthest connect step reached
    stopped_at: str = ""  # the step that failed or the last one reached
    hint: str = ""
    # A "Test connection" run (doctor.runs): its doctor.run event, or None for a client's attempt.
    test_run: Event | None = None
    # Set while grouping: the first step of an attempt that has been completed.
    _done: bool = False

    @property
    def started(self) -> datetime:
        # Steps are in the order the client took them, which is not always the order the rows
        # were written in (a 401 is recorded after it is sent): the times are the rows'.
        return min(s.event.created for s in self.steps)

    @property
    def last(self) -> datetime:
        return max(s.event.created for s in self.steps)

    @property
    def user_ids(self) -> set[int]:
        return {s.event.user_id for s in self.steps if s.event.user_id}

    @property
    def usernames(self) -> list[str]:
        return sorted({s.event.user.username for s in self.steps if s.event.user_id})

    @property
    def stopped_label(self) -> str:
        return STEP_LABEL.get(self.stopped_at, self.stopped_at)

    @property
    def reached_steps(self) -> list[tuple[str, str, bool]]:
        """(step, label, reached) for the progress bar."""
        seen = {s.step for s in self.steps}
        return [(name, label, name in seen) for name, label, _k in STEPS]

    def add(self, step: Step) -> None:
        self.steps.append(step)


@dataclass
class Trace:
    attempts: list[Attempt]
    connector_activity: list[Step]
    truncated: bool


def _summary(event: Event) -> str:
    d = event.detail or {}
    parts = []
    if event.kind == "discovery.as_metadata" and d.get("path"):
        parts.append(d["path"])
    if event.kind == "oauth.register":
        if d.get("client_name"):
            parts.append(f"name {d['client_name']!r}")
        if d.get("redirect_uris"):
            parts.append("redirect " + ", ".join(map(str, d["redirect_uris"]))[:200])
    if event.kind == "oauth.authorize" and "resource_sent" in d:
        parts.append("resource sent" if d["resource_sent"] else "no resource (2025-03-26 client)")
    if d.get("redirect_host"):
        parts.append(f"back to {d['redirect_host']}")
    if d.get("grant_type"):
        parts.append(d["grant_type"])
    if d.get("rpc"):
        parts.append(d["rpc"])
    elif d.get("method") and event.kind.startswith("mcp."):
        parts.append(d["method"])
    if event.kind == "mcp.calls":
        by_name = d.get("by_name") or {}
        parts.append(
            f"{d.get('count', 0)} calls: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(by_name.items()))[:200]
        )
    if d.get("provider"):
        parts.append(d["provider"])
    if d.get("account"):
        parts.append(f"account {d['account']}")
    if d.get("reason"):
        parts.append(str(d["reason"]).replace("_", " "))
    if d.get("credential"):
        parts.append(f"asked for the member's {d['credential']}")
    if d.get("steps"):  # how the upstream's authorization server was found
        parts.append("found via " + " · ".join(map(str, d["steps"])))
    return "; ".join(parts)


def _error(event: Event) -> str:
    d = event.detail or {}
    error = str(d.get("error") or "")
    description = str(d.get("error_description") or "")
    if error.startswith("{") or error.startswith("event:"):  # a JSON-RPC body, kept short
        return error[:300]
    return ": ".join(p for p in (error, description) if p)[:300]


def _step(event: Event) -> Step:
    step = STEP_OF_KIND.get(event.kind, "activity")
    if event.kind == "mcp.call" and event.outcome == Event.Outcome.OK:
        step = "first_call"  # a first call served by another process, or after a restart
    return Step(
        event=event,
        step=step,
        label=KIND_LABEL.get(event.kind, event.kind),
        error=_error(event)
        if event.outcome != Event.Outcome.OK or event.kind.endswith("token")
        else "",
        summary=_summary(event),
    )


def _collect(connector: Connector, since: datetime) -> tuple[list[Event], bool]:
    own = list(
        Event.objects.select_related("user")
        .filter(connector=connector, created__gte=since)
        .order_by("-created", "-id")[:MAX_EVENTS]
    )
    truncated = len(own) == MAX_EVENTS
    client_ids = {e.client_id for e in own if e.client_id}
    origins = {
        e.ip
        for e in own
        if e.kind in ("mcp.unauthenticated", "discovery.resource_metadata") and e.ip
    }
    start = min((e.created for e in own), default=since)
    related = []
    if client_ids:
        # Registration and token requests of these clients that named no connector.
        related += list(
            Event.objects.select_related("user").filter(
                connector__isnull=True, client_id__in=client_ids, created__gte=start
            )
        )
    if origins:
        # What the addresses that probed this connector asked the issuer next: its metadata
        # and a registration (successful or not), which name no connector.
        related += list(
            Event.objects.filter(
                connector__isnull=True,
                kind__in=("discovery.as_metadata", "oauth.register"),
                ip__in=origins,
                created__gte=start,
            )[:MAX_EVENTS]
        )
    runs = {str(e.detail.get("run")) for e in own if e.kind == "doctor.run" and e.detail}
    if runs:
        # The requests of this connector's test runs that named no connector (registrations).
        related += [
            e
            for e in Event.objects.filter(
                connector__isnull=True,
                user_agent__contains=f"{DOCTOR_AGENT}; run ",
                created__gte=start,
            )[:MAX_EVENTS]
            if _run_of(e) in runs
        ]
    # Many clients share an address (a client vendor's servers): a registration seen from one
    # belongs here only if its client never turned up at another connector.
    elsewhere = set(
        Event.objects.filter(client_id__in={e.client_id for e in related if e.client_id})
        .exclude(connector__isnull=True)
        .exclude(connector=connector)
        .values_list("client_id", flat=True)
    )
    related = [
        e for e in related if not (e.client_id in elsewhere and e.client_id not in client_ids)
    ]
    unique = {e.pk: e for e in own + related}
    # The gateway records its 401 after sending it, so the metadata fetch it provoked can be
    # written first: a probe sorts as if it came a little earlier.
    events = sorted(
        unique.values(),
        key=lambda e: (
            e.created - PROBE_SLACK if e.kind == "mcp.unauthenticated" else e.created,
            e.id,
        ),
    )
    return events, truncated


def _test_runs(events: list[Event]) -> tuple[list[Attempt], list[Event]]:
    """The "Test connection" runs among ``events``, each one attempt holding its doctor.run
    event and the requests its User-Agent names; and the other events."""
    runs = {
        str(e.detail.get("run")): Attempt(client_id="", origin=e.ip or "", test_run=e)
        for e in events
        if e.kind == "doctor.run" and (e.detail or {}).get("run")
    }
    rest = []
    for event in events:
        attempt = runs.get(_run_of(event)) if event.kind != "doctor.run" else None
        if event.kind == "doctor.run" and str((event.detail or {}).get("run")) in runs:
            attempt = runs[str(event.detail["run"])]
        if attempt is None:
            rest.append(event)
        else:
            attempt.add(_step(event))
    for attempt in runs.values():
        attempt.steps.sort(key=lambda s: (s.event.created, s.event.id))
    return list(runs.values()), rest


def _run_of(event: Event) -> str:
    """The doctor run an event's request came from (its User-Agent says), or ""."""
    marker = "; run "
    agent = event.user_agent or ""
    if DOCTOR_AGENT not in agent or marker not in agent:
        return ""
    return agent.rsplit(marker, 1)[1].rstrip(")")


def _conclude_test_run(attempt: Attempt, now: datetime) -> None:
    run = attempt.test_run
    d = run.detail or {}
    counts = d.get("counts") or {}
    if d.get("state") == "running":
        attempt.state = "in_progress" if now - run.created < TEST_RUN_LIMIT else "stopped"
        attempt.hint = (
            "The doctor is still running its checks."
            if attempt.state == "in_progress"
            else "The test run never finished (the server stopped while it ran)."
        )
        return
    attempt.state = "passed" if run.outcome == Event.Outcome.OK else "failed"
    summary = (
        f"{counts.get('PASS', 0)} checks passed, {counts.get('WARN', 0)} warned, "
        f"{counts.get('FAIL', 0)} failed, {counts.get('SKIP', 0)} skipped."
    )
    if d.get("failed_steps"):
        summary += " Failed: " + ", ".join(map(str, d["failed_steps"]))[:300] + "."
    attempt.hint = (
        "Test connection: the doctor checked this connector as Claude, Cursor and VS Code "
        "would, without signing in; its requests are below. " + summary
    )


def _group(events: list[Event]) -> tuple[list[Attempt], list[Step]]:
    attempts: list[Attempt] = []
    anonymous: dict[str, Attempt] = {}  # address -> attempt not yet bound to a client
    current: dict[str, Attempt] = {}  # client id -> its latest attempt
    activity: list[Step] = []

    def new(client_id: str, origin: str) -> Attempt:
        attempt = Attempt(client_id=client_id, origin=origin)
        attempts.append(attempt)
        return attempt

    def open_anonymous(origin, at: datetime) -> Attempt | None:
        attempt = anonymous.get(origin)
        if attempt is not None and at - attempt.last <= ANONYMOUS_WINDOW:
            return attempt
        return None

    for event in events:
        step = _step(event)
        origin = event.ip or ""
        if not event.client_id:
            if event.kind.startswith("upstream.") or step.step == "activity":
                activity.append(step)
                continue
            attempt = open_anonymous(origin, event.created)
            # Another probe after discovery went on is the client starting over.
            restarts = (
                attempt is not None
                and event.kind == "mcp.unauthenticated"
                and any(s.step == "probe" for s in attempt.steps)
                and attempt.steps[-1].step != "probe"
            )
            if attempt is None or restarts:
                attempt = new("", origin)
                anonymous[origin] = attempt
            attempt.add(step)
            continue

        cid = event.client_id
        attempt = current.get(cid)
        if event.kind == "oauth.register":
            attempt = open_anonymous(origin, event.created)
            if attempt is None:
                attempt = new(cid, origin)
            attempt.client_id = cid
            anonymous.pop(origin, None)
            current[cid] = attempt
        elif event.kind == "oauth.authorize" and (attempt is None or attempt._done):
            # A new authorization of a known client (a CIMD client, or a reconnect): take the
            # anonymous discovery that just happened, if any, as its beginning.
            attempt = _recent_discovery(anonymous, event.created) or new(cid, origin)
            attempt.client_id = cid
            current[cid] = attempt
        elif attempt is None:
            attempt = new(cid, origin)
            current[cid] = attempt
        attempt.add(step)
        if step.step in ("code", "token", "first_call") and not step.failed:
            attempt._done = True
    return attempts, activity


def _recent_discovery(anonymous: dict, at: datetime) -> Attempt | None:
    candidates = [
        a
        for a in anonymous.values()
        if at - a.last <= ANONYMOUS_WINDOW and any(s.step == "as_metadata" for s in a.steps)
    ]
    if len(candidates) != 1:
        return None  # none, or ambiguous: better an attempt without its start than a wrong one
    attempt = candidates[0]
    for origin, a in list(anonymous.items()):
        if a is attempt:
            anonymous.pop(origin)
    return attempt


def _conclude(attempt: Attempt, now: datetime, connector: Connector) -> None:
    connect_steps = [s for s in attempt.steps if s.step in STEP_INDEX]
    ok_steps = [s for s in connect_steps if not s.failed]
    reached = max((STEP_INDEX[s.step] for s in ok_steps), default=-1)
    # A client that skipped the probe (or registered long ago) still reached what it used.
    attempt.reached = STEPS[reached][0] if reached >= 0 else ""
    connected = attempt.reached == "first_call" or any(
        s.event.kind in ("mcp.call", "mcp.calls") and not s.failed for s in attempt.steps
    )
    failures = [s for s in connect_steps if s.failed]
    last_failure = failures[-1] if failures else None
    if connected:
        attempt.state = "connected"
        attempt.stopped_at = ""
        rejected = [s for s in attempt.steps if s.event.kind == "mcp.rejected"]
        if rejected and rejected[-1] is attempt.steps[-1]:
            attempt.hint = _rejected_hint(rejected[-1])
        return
    if last_failure is not None and (not ok_steps or STEP_INDEX[last_failure.step] >= reached):
        attempt.state = "failed"
        attempt.stopped_at = last_failure.step
        attempt.hint = _failure_hint(last_failure, connector)
        return
    attempt.state = "in_progress" if now - attempt.last < IN_PROGRESS_WINDOW else "stopped"
    attempt.stopped_at = attempt.reached
    attempt.hint = _stopped_hint(attempt, connector)


def _issuer() -> str:
    return settings.PUBLIC_URL


def _stopped_hint(attempt: Attempt, connector: Connector) -> str:
    reached = attempt.reached
    redirect_host = next(
        (s.event.detail.get("redirect_host") for s in attempt.steps if s.step == "code"), ""
    )
    hints = {
        "": "The client sent no request this connector could trace yet.",
        "probe": (
            "The client never fetched protected-resource metadata: check that the 401 carries "
            "resource_metadata in its WWW-Authenticate header and that nothing in front of the "
            "server (a proxy, CDN or firewall) rewrites or strips it. Clients of the 2025-03-26 "
            f"generation skip it and look for {_issuer()}/.well-known/"
            "oauth-authorization-server instead."
        ),
        "resource_metadata": (
            "The client read the protected-resource metadata but never fetched the "
            f"authorization server's metadata ({_issuer()}/.well-known/"
            "oauth-authorization-server): check that PUBLIC_URL is the address clients reach, "
            "with a valid certificate, and that the path is not blocked."
        ),
        "as_metadata": (
            "The client found the authorization server but never registered: check that "
            f"POST {_issuer()}/register reaches this server without a redirect, or that the "
            "client presents a client ID metadata document."
        ),
        "register": (
            "The client registered but the browser never opened /authorize: the user may have "
            "closed the window, or the client could not open a browser."
        ),
        "authorize": (
            "The sign-in or consent page was shown but never answered: the user did not click "
            "Allow or Deny."
        ),
        "consent": (
            "The user approved, but no code was issued: the upstream account may be missing "
            "(shared mode needs a tenant admin to connect it from the connector page)."
        ),
        "upstream": (
            "The user went to the upstream provider and never came back: check that the "
            "redirect URI registered with the provider is "
            f"{_issuer()}/upstream/<provider>/callback and that the user finished there."
        ),
        "code": (
            "A code was issued and the browser sent back to the client"
            f"{' (' + redirect_host + ')' if redirect_host else ''}, but the client never "
            f"exchanged it at {_issuer()}/token: check that the redirect reached the client "
            "and that the client can reach the token endpoint."
        ),
        "token": (
            f"The client got a token but never called {connector.url} with it: check the URL "
            "configured in the client is exactly the connector URL."
        ),
    }
    hint = hints.get(reached, "")
    if attempt.state == "in_progress":
        hint = "Still in progress, or stopped here. " + hint
    return hint


def _failure_hint(step: Step, connector: Connector) -> str:
    event = step.event
    d = event.detail or {}
    error = str(d.get("error") or "")
    reason = str(d.get("reason") or "")
    if event.kind == "oauth.register":
        return (
            f"Registration was refused ({step.error or event.status_code}). The client should "
            "register redirect URIs that are https or loopback, and only the "
            "authorization_code and refresh_token grants."
        )
    if event.kind == "oauth.authorize" and reason == "not_member":
        who = event.user.username if event.user_id else "The user"
        return (
            f"{who} is not a member of {connector.tenant.name}: a tenant admin invites them "
            "from the Members page."
        )
    if event.kind == "oauth.authorize":
        return f"The authorization was refused ({reason or step.error})."
    if event.kind == "oauth.consent" and error == "temporarily_unavailable":
        return (
            f"{reason} The member was warned before Allow, and the client was told "
            "temporarily_unavailable; it connects once the account is connected again."
        )
    if event.kind == "oauth.consent":
        return "The user clicked Deny on the consent page; the client was told access_denied."
    if event.kind.startswith("upstream."):
        return (
            f"The upstream provider did not complete the connection ({error or 'refused'}); "
            "the user can try again, and a tenant admin can check the provider app settings"
            + (
                " or run Test upstream on the connector page."
                if get_kind(connector.kind).doctor_url
                else "."
            )
        )
    if event.kind == "oauth.token":
        if error == "invalid_grant":
            return (
                "The code exchange failed with invalid_grant: the PKCE code_verifier did not "
                "match, the code was used twice or is older than 5 minutes, or redirect_uri "
                "differs from the authorization request."
            )
        if error == "invalid_client":
            return (
                "The client authenticated wrongly at /token: it should use the auth method it "
                "registered (none, client_secret_post or client_secret_basic)."
            )
        return f"The token request failed ({step.error or event.status_code})."
    # The error text itself came from the client or the tool: it is shown in the steps as such,
    # never as our advice.
    if event.kind == "mcp.first_call":
        return (
            "The first MCP call failed; its error is in the steps below, as the tool returned it."
        )
    return "This step failed; its error is in the steps below, as it was returned."


def _rejected_hint(step: Step) -> str:
    description = str((step.event.detail or {}).get("error_description") or "")
    if "another connector" in description:
        return (
            "The client sent a token issued for another connector URL: remove the connector "
            "from the client and add it again with this URL."
        )
    if "revoked" in description or "unknown" in description:
        return (
            "The client's token was revoked (or is unknown): the client has to refresh or "
            "connect again."
        )
    if "expired" in description:
        return "The client's token expired and it did not refresh it."
    if "member" in description:
        return "The user is no longer a member of the tenant."
    if "disabled" in description:
        return "The connector or its tenant is disabled."
    return "The last request was rejected; the reason is in the steps below."


def connect_trace(
    connector: Connector,
    *,
    user=None,
    client_id: str = "",
    kind: str = "",
    outcome: str = "",
    since: datetime | None = None,
) -> Trace:
    """The connector's attempts, newest first; with ``user`` (a member) only attempts their
    account took part in. ``kind`` and ``outcome`` keep the matching steps (attempts with
    none are dropped); an attempt's state and hint always come from all its steps."""
    now = timezone.now()
    events, truncated = _collect(connector, since or now - TRACE_WINDOW)
    runs, events = _test_runs(events)
    attempts, activity = _group(events)
    names = dict(
        Application.objects.filter(
            client_id__in={a.client_id for a in attempts if a.client_id}
        ).values_list("client_id", "name")
    )
    result = []
    for attempt in [*attempts, *runs]:
        if attempt.test_run is not None:
            _conclude_test_run(attempt, now)
        else:
            _conclude(attempt, now, connector)
            attempt.client_name = names.get(attempt.client_id) or next(
                (
                    s.event.detail.get("client_name")
                    for s in attempt.steps
                    if s.event.kind == "oauth.register" and s.event.detail.get("client_name")
                ),
                "",
            )
        if user is not None and user.pk not in attempt.user_ids:
            continue
        if client_id and attempt.client_id != client_id:
            continue
        if kind or outcome:
            attempt.steps = [
                s
                for s in attempt.steps
                if (not kind or s.event.kind == kind)
                and (not outcome or s.event.outcome == outcome)
            ]
            if not attempt.steps:
                continue
        result.append(attempt)
    if user is not None:
        activity = [s for s in activity if s.event.user_id == user.pk]
    activity = [
        s
        for s in activity
        if (not kind or s.event.kind == kind) and (not outcome or s.event.outcome == outcome)
    ]
    result.sort(key=lambda a: a.last, reverse=True)
    return Trace(attempts=result, connector_activity=activity[::-1], truncated=truncated)
