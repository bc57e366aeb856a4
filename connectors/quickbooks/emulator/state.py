"""The emulator's whole state, and the handles tests use to steer it.

Everything lives in memory behind one re-entrant lock: request handlers run on the server's event
loop while tests call these methods from their own thread. With a ``state_path`` (the embedded
default), what Intuit would remember across our restarts is also kept in that file
(``persistence``), saved by the app after every request that may change it.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .clock import Clock
from .company import Company
from .faults import AUTH_FAULT_STYLES, InjectedFault
from .persistence import (
    state_document,
    state_read,
    state_restore,
    state_set_aside,
    state_write,
)
from .ratelimit import RealmRateLimiter, ThrottleLimits
from .seed import seed_company
from .tokens import ACCOUNTING_SCOPE, TokenAuthority, TokenIssue, TokenLifetimes, build_id_token

DEFAULT_USER_EMAIL = "sandbox.admin@example.com"
FIRST_REALM_ID = 9341453000000001
REQUEST_LOG_SIZE = 500


@dataclass
class EmulatorSettings:
    """What `create_app` was given; `Emulator.configure()` changes it at run time."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] | None = None
    auto_approve: bool = False
    auth_fault_style: str = "alternate"  # "json", "xml" or "alternate" (one, then the other)
    lifetimes: TokenLifetimes = field(default_factory=TokenLifetimes)
    throttle: ThrottleLimits = field(default_factory=ThrottleLimits)


# configure() keys -> (settings attribute path)
_CONFIGURABLE = {
    "auto_approve": ("auto_approve",),
    "auth_fault_style": ("auth_fault_style",),
    "redirect_uris": ("redirect_uris",),
    "access_token_lifetime": ("lifetimes", "access_token"),
    "authorization_code_lifetime": ("lifetimes", "authorization_code"),
    "refresh_rotation_window": ("lifetimes", "refresh_rotation_window"),
    "refresh_token_lifetime": ("lifetimes", "refresh_token"),
    "grant_maximum_lifetime": ("lifetimes", "grant_maximum"),
    "throttle_per_second": ("throttle", "per_second"),
    "throttle_per_minute": ("throttle", "per_minute"),
    "throttle_concurrent": ("throttle", "concurrent"),
}


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator answered (control endpoints excluded)."""

    method: str
    path: str
    query: dict[str, str]
    endpoint: str | None
    status: int | None
    intuit_tid: str
    at: datetime


class Emulator:
    """State of one emulated Intuit; reachable as `app.state.emulator`."""

    def __init__(
        self,
        *,
        base_url: str,
        settings: EmulatorSettings,
        clock: Clock,
        state_path: Path | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.lock = threading.RLock()
        self.state_path = state_path
        self._initial_settings = copy.deepcopy(settings)
        self._active_requests = 0  # survives reset(): requests may outlive a test
        self._reset_memory()
        self._restore()

    def reset(self) -> None:
        """Forget everything: companies, grants, faults, counters, settings changes, the clock
        (and the saved state)."""
        with self.lock:
            self._reset_memory()
            self.save()

    def _reset_memory(self) -> None:
        with self.lock:
            self.settings = copy.deepcopy(self._initial_settings)
            self.counters: Counter[str] = Counter()
            self.tokens = TokenAuthority(self.settings.lifetimes, self.counters)
            self.companies: dict[str, Company] = {}
            self.faults: list[InjectedFault] = []
            self.idempotent_responses: dict[tuple[str, str], tuple[int, Any]] = {}
            self.rate_limiter = RealmRateLimiter()
            self.requests: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_SIZE)
            self._auth_faults_sent = 0
            self.clock.reset()

    # --- persistence ----------------------------------------------------------------------

    def save(self) -> None:
        """Write what survives a restart to ``state_path`` (nothing without one)."""
        if self.state_path is None:
            return
        with self.lock:
            state_write(self.state_path, state_document(self))

    def _restore(self) -> None:
        if self.state_path is None:
            return
        document = state_read(self.state_path)
        if document is None:
            return
        with self.lock:
            try:
                state_restore(self, document)
            except (KeyError, TypeError, ValueError) as exc:
                self._reset_memory()
                state_set_aside(self.state_path, exc)

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/op/v1"

    # --- settings -------------------------------------------------------------------------

    def configure(self, **changes: Any) -> None:
        """Change settings at run time, e.g. `configure(auth_fault_style="xml",
        refresh_rotation_window=3600, throttle_per_second=None)`."""
        unknown = set(changes) - set(_CONFIGURABLE)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(_CONFIGURABLE)}")
        style = changes.get("auth_fault_style", self.settings.auth_fault_style)
        if style not in AUTH_FAULT_STYLES:
            raise ValueError(f"auth_fault_style must be one of {AUTH_FAULT_STYLES}")
        with self.lock:
            for key, value in changes.items():
                *parents, attribute = _CONFIGURABLE[key]
                target: Any = self.settings
                for parent in parents:
                    target = getattr(target, parent)
                setattr(target, attribute, value)

    def settings_snapshot(self) -> dict[str, Any]:
        with self.lock:
            data = dataclasses.asdict(self.settings)
        data.pop("client_secret")
        return data

    def next_auth_fault_style(self) -> str:
        """The style of the next 401: the configured one, or json and xml in turn."""
        with self.lock:
            style = self.settings.auth_fault_style
            if style == "alternate":
                style = ("json", "xml")[self._auth_faults_sent % 2]
            self._auth_faults_sent += 1
            return style

    # --- faults ---------------------------------------------------------------------------

    def inject_fault(
        self,
        endpoint: str = "*",
        kind: str = "error",
        *,
        status: int = 500,
        body: Any = None,
        delay: float = 0.0,
        count: int | None = 1,
    ) -> InjectedFault:
        """Make the next `count` requests to `endpoint` fail (see `InjectedFault` for kinds)."""
        fault = InjectedFault(endpoint, kind, status, body, delay, count)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, endpoint: str) -> InjectedFault | None:
        """The first fault aimed at `endpoint`, used up by one request."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(endpoint):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self.faults.remove(fault)
                    self.counters["faults.injected"] += 1
                    self.counters[f"faults.injected.{fault.kind}"] += 1
                    return fault
            return None

    # --- companies ------------------------------------------------------------------------

    def create_company(self, realm_id: str | None = None, name: str | None = None) -> str:
        """A new seeded company; returns its realm id."""
        with self.lock:
            if realm_id is None:
                candidate = FIRST_REALM_ID + len(self.companies)
                while str(candidate) in self.companies:
                    candidate += 1
                realm_id = str(candidate)
            if realm_id in self.companies:
                raise ValueError(f"company {realm_id} exists")
            number = len(self.companies) + 1
            now = self.clock.now()
            company = Company(realm_id, name or f"Sandbox Company_US_{number}", now)
            seed_company(company, now)
            self.companies[realm_id] = company
            return realm_id

    def company(self, realm_id: str) -> Company:
        """The live books of a realm (hold `emulator.lock` while reading them from a test)."""
        with self.lock:
            return self.companies[realm_id]

    def ensure_company(self, realm_id: str | None) -> str:
        """The given realm (created if new), or the first company (created if none)."""
        with self.lock:
            if realm_id:
                if realm_id not in self.companies:
                    self.create_company(realm_id)
                return realm_id
            if self.companies:
                return next(iter(self.companies))
            return self.create_company()

    # --- tokens ---------------------------------------------------------------------------

    def token_response(self, issue: TokenIssue) -> dict[str, Any]:
        """Intuit's token endpoint body for a successful exchange or refresh."""
        body: dict[str, Any] = {
            "token_type": "bearer",
            "access_token": issue.access_token,
            "expires_in": issue.expires_in,
            "refresh_token": issue.grant.refresh_token,
            "x_refresh_token_expires_in": issue.refresh_expires_in,
        }
        if "openid" in issue.grant.scopes:
            body["id_token"] = build_id_token(
                grant=issue.grant,
                issuer=self.issuer,
                client_secret=self.settings.client_secret,
                now=self.clock.now(),
            )
        return body

    def issue_tokens(
        self,
        realm_id: str | None = None,
        *,
        scopes: tuple[str, ...] = (ACCOUNTING_SCOPE,),
        user_email: str = DEFAULT_USER_EMAIL,
    ) -> dict[str, Any]:
        """Connect a company without the browser round trip: the token response, plus realmId."""
        with self.lock:
            realm_id = self.ensure_company(realm_id)
            issue = self.tokens.issue_direct(
                client_id=self.settings.client_id,
                realm_id=realm_id,
                user_email=user_email,
                scopes=scopes,
                now=self.clock.now(),
            )
            return {**self.token_response(issue), "realmId": realm_id}

    def disconnect(self, realm_id: str) -> int:
        """The company admin disconnects the app: every grant for that realm dies."""
        with self.lock:
            return self.tokens.revoke_realm(realm_id)

    # --- observation ----------------------------------------------------------------------

    def request_started(self) -> None:
        with self.lock:
            self._active_requests += 1

    def request_finished(self) -> None:
        with self.lock:
            self._active_requests -= 1

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being served (e.g. a slow fault still sleeping); True if so.

        Call it before `reset()` between tests, so a straggler from one test cannot touch the
        next test's state.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self._active_requests == 0:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def counters_snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counters)

    def record_request(self, record: RequestRecord) -> None:
        with self.lock:
            self.requests.append(record)

    def recent_requests(self, endpoint: str | None = None) -> list[RequestRecord]:
        with self.lock:
            return [r for r in self.requests if endpoint is None or r.endpoint == endpoint]
