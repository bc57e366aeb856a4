"""Outages of the database and of Redis (broker and cache) under traffic, as a deployment meets
them: every answer during the outage is a clean 503 in its endpoint's shape (never uvicorn's
plain-text 500), /readyz names the service that is down, nothing half-written is left, and
everything recovers without restarting web.

Web runs as compose runs it (production settings, tests/deploy/deployment.py) against a private
PostgreSQL and a private Redis (tests/support/services.py), which the test stops and starts; the
shared servers are never touched. While three clients keep calling a tool, reading /readyz and
the protected-resource metadata, the test sends one request of each kind it probes (MCP, the
OAuth token endpoint and registration, the API, the sign-in form) and checks the answer.
"""

import json
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field

import httpx
import psycopg
from cryptography.fernet import Fernet

from tests.deploy.deployment import TOKEN_SETUP, Deployment, wait_healthy
from tests.support.live import free_port

API_KEY_SETUP = """
from django.contrib.auth import get_user_model
from tenants.api_keys import api_key_create
print(api_key_create(user=get_user_model().objects.get(username="bob"), name="faults")[1])
"""
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami"}}
RECOVERY_SECONDS = 90  # the pool reconnects with a backoff; a loaded machine is slow


@dataclass
class Platform:
    base: str
    token: str
    api_key: str
    mcp_url: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))
    registered: dict[str, str] = field(default_factory=dict)  # client_name -> client_id or ""
    tool_calls_answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call_tool(self, http: httpx.Client) -> httpx.Response:
        response = http.post(
            self.mcp_url,
            json=CALL,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18",
            },
        )
        if response.status_code == 200:
            assert '"isError":false' in response.text.replace(" ", ""), response.text
            with self.lock:
                self.tool_calls_answered += 1
        return response

    def register(self) -> httpx.Response:
        name = f"faults-{secrets.token_hex(6)}"
        response = self.http.post(
            f"{self.base}/register",
            json={"client_name": name, "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
                  "token_endpoint_auth_method": "none"},
        )  # fmt: skip
        self.registered[name] = response.json()["client_id"] if response.status_code == 201 else ""
        return response

    def exchange_code(self) -> httpx.Response:
        return self.http.post(
            f"{self.base}/token",
            data={"grant_type": "authorization_code", "code": "not-a-code", "client_id": "load",
                  "redirect_uri": "https://claude.ai/api/mcp/auth_callback",
                  "code_verifier": "v" * 43},
        )  # fmt: skip

    def api(self) -> httpx.Response:
        return self.http.get(
            f"{self.base}/api/v1/tenants/", headers={"Authorization": f"Bearer {self.api_key}"}
        )

    def sign_in(self) -> httpx.Response:
        if "csrftoken" not in self.http.cookies:
            self.http.get(f"{self.base}/accounts/login/")
        # The cookie's secret is a valid form token too (sign-in rotates it).
        csrf = self.http.cookies["csrftoken"]
        return self.http.post(
            f"{self.base}/accounts/login/",
            data={"username": "bob", "password": "pw-12345", "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{self.base}/accounts/login/"},
        )

    def probes(self) -> dict[str, httpx.Response]:
        return {
            "mcp": self.call_tool(self.http),
            "register": self.register(),
            "token": self.exchange_code(),
            "api": self.api(),
            "sign-in": self.sign_in(),
            "readyz": self.http.get(f"{self.base}/readyz"),
            "healthz": self.http.get(f"{self.base}/healthz"),
        }


# The answers of a healthy platform to each probe.
NORMAL = {
    "mcp": {200},
    "register": {201},
    "token": {400, 401},  # no such client or code: OAuth's own refusal
    "api": {200},
    "sign-in": {302},
    "readyz": {200},
    "healthz": {200},
    "metadata": {200},
}


def assert_unavailable(name: str, response: httpx.Response) -> None:
    """A clean 503 in the shape of the endpoint that answered it."""
    assert response.status_code == 503, (name, response.status_code, response.text[:500])
    if name == "readyz":
        return
    assert int(response.headers["retry-after"]) > 0, name
    if name == "mcp":
        body = response.json()
        assert body["jsonrpc"] == "2.0" and body["error"]["code"] == -32000, body
        assert "temporarily unavailable" in body["error"]["message"]
        assert response.headers["access-control-allow-origin"] == "*"
    elif name in ("register", "token", "metadata"):
        body = response.json()
        assert body["error"] == "temporarily_unavailable", body
        assert response.headers["cache-control"] == "no-store"
    elif name == "api":
        assert response.json() == {"detail": "Temporarily unavailable: try again shortly."}
    else:  # a person's page: the platform's styled page
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>Temporarily unavailable</h1>" in response.text
        assert "Error 503" in response.text


def assert_normal(answers: dict[str, httpx.Response]) -> None:
    unexpected = {
        name: (r.status_code, r.text[:300])
        for name, r in answers.items()
        if r.status_code not in NORMAL[name]
    }
    assert not unexpected, unexpected


def wait_recovered(platform: Platform, deployment: Deployment) -> None:
    """Without touching web: poll until every probe answers normally again."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        answers = platform.probes()
        if all(r.status_code in NORMAL[name] for name, r in answers.items()):
            return
        deployment.alive()
        assert time.monotonic() < deadline, {n: r.status_code for n, r in answers.items()}
        time.sleep(0.5)


class Traffic:
    """Clients calling the tool, /readyz and the metadata in a loop, from threads, keeping
    every answer (or the error of a request that got none)."""

    def __init__(self, platform: Platform, clients: int = 3):
        self.platform = platform
        self.answers: list[tuple[str, int | str, str, dict]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        base = self.platform.base
        metadata = f"{base}/.well-known/oauth-protected-resource/t/acme/echo/mcp"
        with httpx.Client(timeout=60) as http:
            while not self._stop.is_set():
                for name, request in (
                    ("mcp", lambda: self.platform.call_tool(http)),
                    ("readyz", lambda: http.get(f"{base}/readyz")),
                    ("metadata", lambda: http.get(metadata)),
                ):
                    try:
                        response = request()
                    except httpx.HTTPError as exc:
                        self.answers.append((name, repr(exc), "", {}))
                        continue
                    self.answers.append(
                        (name, response.status_code, response.text, dict(response.headers))
                    )

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(120)


def test_database_and_redis_outages_degrade_cleanly_and_recover(tmp_path, private_services):
    postgres, redis_server = private_services
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    dotenv = {
        "PUBLIC_URL": base,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "UPSTREAM_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": postgres.url.rsplit("/", 1)[0] + "/platform",
        "REDIS_URL": redis_server.url(0),
        "CACHE_REDIS_URL": redis_server.url(1),
        "WEB_CONCURRENCY": "1",
        "DB_POOL_SIZE": "4",
        "DB_POOL_TIMEOUT": "3",  # how long a request waits for the database before its 503
        "AUDIT_FLUSH_SECONDS": "1",  # flushes fail during the outage and are kept for later
        "DCR_RATE_LIMIT": "10000",
        "GATEWAY_RATE_LIMIT_PER_CLIENT": "10000",  # counted in Redis, while it answers
        "EMAIL_HOST": "127.0.0.1",  # never used here; production refuses to start without one
        "EXTRA_CONNECTOR_KINDS": "tests.support.kinds.echo_kind",
    }
    deployment = Deployment(tmp_path, dotenv, port)
    deployment.run("migrate")
    token = secrets.token_urlsafe(32)
    setup = TOKEN_SETUP % token + API_KEY_SETUP
    mcp_url, api_key = deployment.run("web", ["python", "manage.py", "shell", "-c", setup]).split()[
        -2:
    ]
    platform = Platform(base, token, api_key, mcp_url)

    deployment.start("web")
    try:
        wait_healthy(deployment, base, timeout=120)
        assert_normal(platform.probes())
        with Traffic(platform) as traffic:
            time.sleep(1)

            # The database stops (a restart's first half): every session is ended.
            postgres.stop()
            answers = platform.probes()
            for name in ("mcp", "register", "token", "api", "sign-in", "readyz"):
                assert_unavailable(name, answers[name])
            checks = answers["readyz"].json()["checks"]
            assert checks["database"].startswith("error"), checks
            assert checks["broker"] == checks["cache"] == "ok", checks
            assert answers["healthz"].status_code == 200
            postgres.start()
            wait_recovered(platform, deployment)

            # Redis stops: the broker and the cache. Registration and sign-in count attempts in
            # it, so they wait for it; tool calls go on (their rate limits are then not
            # counted), and so does the API.
            redis_server.stop()
            answers = platform.probes()
            assert answers["mcp"].status_code == 200 and answers["api"].status_code == 200
            for name in ("register", "sign-in", "readyz"):
                assert_unavailable(name, answers[name])
            checks = answers["readyz"].json()["checks"]
            assert checks["database"] == "ok", checks
            assert checks["broker"].startswith("error") and checks["cache"].startswith("error")
            redis_server.start()
            wait_recovered(platform, deployment)
            time.sleep(1)

        # Under traffic, every answer was a normal one or a clean 503, never a 500 nor none.
        outage = 0
        for name, status, text, headers in traffic.answers:
            if status in NORMAL[name]:
                continue
            assert status == 503, (name, status, text[:500])
            outage += 1
            response = httpx.Response(status, headers=headers, text=text)
            assert_unavailable(name, response)
        assert outage > 0, "the traffic never met the outage"
        deployment.alive()
    finally:
        codes = deployment.stop()
    log = deployment.log("web")
    # A single uvicorn process exits by the signal it was stopped with, after a clean shutdown.
    assert codes["web"] in (0, -signal.SIGTERM) and "Application shutdown complete" in log, log
    assert "Exception in ASGI application" not in log
    assert not re.search(r'" 500\b', log), "a request was answered 500"

    # Nothing half-written, nothing lost: each tool call answered 200 has its audit record
    # (flushes that failed during the outage were kept and written after), and each client
    # told 201 is registered while no client told 503 is.
    with psycopg.connect(dotenv["DATABASE_URL"]) as db:
        audited = db.execute(
            "SELECT count(*) FROM events_auditrecord WHERE tool = 'whoami' AND outcome = 'ok'"
        ).fetchone()[0]
        stored = dict(
            db.execute(
                "SELECT name, client_id FROM oauth2_provider_application"
                " WHERE name LIKE 'faults-%%'"
            ).fetchall()
        )
    assert audited == platform.tool_calls_answered
    told_registered = {name: cid for name, cid in platform.registered.items() if cid}
    assert stored == told_registered, json.dumps([stored, platform.registered])
