"""More than one of everything: two web processes (uvicorn on the platform's ASGI app) and two
Celery workers on PostgreSQL and Redis. One client's calls go to both web processes in turn
while upstream tokens are refreshed under load; the limits hold across both processes, no
refresh happens twice, and the audit log has every call exactly once."""

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from events.models import AuditRecord
from tests.support import workers
from tests.support.flow import OAuthClient, mcp_post
from tests.support.live import free_port
from tests.support.oauth import Browser
from tests.support.sql import postgres_only
from upstream import clock, tasks
from upstream.models import UpstreamConnection

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600
CLIENT_LIMIT = 60  # gateway requests per OAuth client per window
INTUIT_PER_MINUTE = 24  # Accounting API requests per company per minute, for every process

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL or not settings.CACHE_REDIS_URL,
        reason="replicas share their limits and broker through Redis: set REDIS_URL",
    ),
    postgres_only("replicas share one database, PostgreSQL's"),
]


@pytest.fixture
def books(live_url, acme, qbo_emulator, settings, shared_clock):
    """Three QuickBooks connectors of acme, each with its own company connected (shared mode)
    and keeping every tool call's arguments in the audit log."""
    from tenants.services import connector_create

    qbo_emulator.point_platform_at(settings)
    # Intuit's per-second and concurrency limits are not what this test measures.
    qbo_emulator.emulator.configure(
        throttle_per_second=None, throttle_concurrent=None, throttle_per_minute=INTUIT_PER_MINUTE
    )
    connectors = []
    for number in range(3):
        connector = connector_create(
            tenant=acme["tenant"], kind="quickbooks", slug=f"books-{number}", mode="shared"
        )
        connector.audit_arguments = "full"
        connector.save(update_fields=["audit_arguments"])
        connection_, _ = qbo_emulator.store_connection(connector=connector)
        connectors.append({"connector": connector, "connection": connection_})
    return connectors


def _environment(emulator, shared_clock) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "DATABASE_URL": workers.test_database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "UPSTREAM_ENCRYPTION_KEYS": ",".join(settings.UPSTREAM_ENCRYPTION_KEYS),
        "PUBLIC_URL": settings.PUBLIC_URL,
        "QUICKBOOKS_ENVIRONMENT": emulator.base_url,
        "QUICKBOOKS_CLIENT_ID": emulator.client_id,
        "QUICKBOOKS_CLIENT_SECRET": emulator.client_secret,
        "QUICKBOOKS_THROTTLE_PER_MINUTE": str(INTUIT_PER_MINUTE),
        "UPSTREAM_CLOCK_OFFSET_FILE": str(shared_clock),
        "UPSTREAM_RETRY_BASE_SECONDS": "0.2",
        "GATEWAY_RATE_LIMIT_PER_CLIENT": str(CLIENT_LIMIT),
        "GATEWAY_RATE_LIMIT_WINDOW": "600",
        "AUDIT_FLUSH_SECONDS": "1",
    }


@contextmanager
def web_processes(count: int, env: dict[str, str], log_dir: Path):
    """``count`` uvicorn processes serving the platform's ASGI app; yields their base URLs."""
    processes, urls = [], []
    try:
        for number in range(count):
            port = free_port()
            log = open(log_dir / f"web-{number}.log", "w")  # noqa: SIM115 (closed with the process)
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "config.asgi:application",
                        "--host=127.0.0.1",
                        f"--port={port}",
                        "--no-proxy-headers",
                        "--log-level=warning",
                        "--timeout-graceful-shutdown=5",
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for process, url in zip(processes, urls, strict=True):
            _wait_healthy(process, url)
        yield urls
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_healthy(process: subprocess.Popen, url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the web process on {url} exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the web process on {url} did not start in {timeout}s")


def _at(base: str, connector) -> str:
    """The connector's MCP URL at one web process."""
    return f"{base}/t/{connector.tenant.slug}/{connector.slug}/mcp"


def _find_customers(url: str, token: str, name: str) -> dict:
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "find_customers", "arguments": {"name": name}},
    }
    response = mcp_post(url, token, payload, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _advance(emulator, seconds: float) -> None:
    emulator.emulator.clock.advance(seconds)
    clock.advance(seconds)


def _wait_until(predicate, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_two_web_processes_and_two_workers_share_limits_refreshes_and_the_audit_log(
    live_url, books, qbo_emulator, shared_clock, tmp_path
):
    emulator = qbo_emulator.emulator
    browser = Browser("bob", "bob-pass-123")
    client = OAuthClient.register(live_url)  # one client, calling both processes in turn
    tokens = [client.tokens(browser, b["connector"].url)["access_token"] for b in books]
    env = _environment(qbo_emulator, shared_clock)

    with web_processes(2, env, tmp_path) as webs, workers.celery_workers(2, env, concurrency=3):
        # 1. Refreshes under load: every access token expired; calls alternate between the
        # two web processes (each may refresh inline) while both workers are asked to refresh
        # every connection twice.
        loaded = books[:2]
        sent: list[str] = []
        errors: list[str] = []
        before = emulator.counters_snapshot()
        windows = 2
        for window in range(windows):
            _advance(qbo_emulator, 25 * HOUR)  # expired, and past the rotation window
            since = clock.now()

            def calls(index, window=window):
                for n in range(3):
                    name = f"w{window}-c{index}-n{n}"
                    sent.append(name)
                    url = _at(webs[(index + n) % 2], loaded[index]["connector"])
                    result = _find_customers(url, tokens[index], name)
                    if result["isError"]:
                        errors.append(result["content"][0]["text"])

            callers = [threading.Thread(target=calls, args=(i,)) for i in range(len(loaded))]
            for caller in callers:
                caller.start()
            for book in loaded:
                tasks.upstream_refresh.delay(book["connection"].pk)
                tasks.upstream_refresh.delay(book["connection"].pk)
            for caller in callers:
                caller.join()
            assert not errors, errors
            _wait_until(
                lambda since=since: all(
                    (row := UpstreamConnection.objects.get(pk=b["connection"].pk)).last_refresh_at
                    and row.last_refresh_at >= since
                    and not row.lease_owner
                    for b in loaded
                ),
                what="refreshes",
            )
        after = emulator.counters_snapshot()
        # No refresh happened twice: one exchange per connection per window, none refused.
        assert after["token.refresh"] - before.get("token.refresh", 0) == windows * len(loaded)
        assert after.get("token.refresh.invalid_grant", 0) == before.get(
            "token.refresh.invalid_grant", 0
        )

        # 2. The audit log has every call exactly once (each web process writes its own
        # batches; AUDIT_FLUSH_SECONDS=1 there).
        def audited():
            return AuditRecord.objects.filter(tool="find_customers").values_list(
                "arguments", flat=True
            )

        _wait_until(lambda: len(audited()) >= len(sent), what="audit records")
        time.sleep(2)  # a duplicate would be written by now
        assert sorted(a["name"] for a in audited()) == sorted(sent)

        # 3. The gateway's per-client limit is one count across both processes: a new client
        # gets CLIENT_LIMIT requests in all, not CLIENT_LIMIT per process.
        fresh = OAuthClient.register(live_url)
        token = fresh.tokens(browser, books[0]["connector"].url)["access_token"]
        statuses = [
            mcp_post(_at(webs[n % 2], books[0]["connector"]), token).status_code
            for n in range(CLIENT_LIMIT + 10)
        ]
        assert statuses == [200] * CLIENT_LIMIT + [429] * 10

        # 4. Intuit's per-company limit is one count across both processes: of more calls than
        # the minute allows, sent to both at once, only the minute's worth reach Intuit; the
        # rest wait for the window instead of being sent (and refused with 429).
        third = books[2]
        token = client.tokens(browser, third["connector"].url)["access_token"]
        requests_before = emulator.counters_snapshot().get("api.requests", 0)
        extra = 6
        callers = [
            threading.Thread(
                target=_call_quietly,
                args=(_at(webs[n % 2], third["connector"]), token, f"t{n}"),
                daemon=True,
            )
            for n in range(INTUIT_PER_MINUTE + extra)
        ]
        for caller in callers:
            caller.start()

        def reached_intuit():
            return emulator.counters_snapshot().get("api.requests", 0) - requests_before

        _wait_until(lambda: reached_intuit() >= INTUIT_PER_MINUTE, what="a minute's calls")
        time.sleep(3)  # the other calls are waiting for a slot, not sent
        assert reached_intuit() == INTUIT_PER_MINUTE
        assert sum(caller.is_alive() for caller in callers) == extra
        assert emulator.counters_snapshot().get("api.throttled", 0) == 0


def _call_quietly(url: str, token: str, name: str) -> None:
    """A call that may still be waiting for Intuit's window when the web processes stop."""
    try:
        _find_customers(url, token, name)
    except (httpx.HTTPError, AssertionError):
        pass
