"""``uv run manage.py serve`` on the embedded default, as a newcomer runs it: no PostgreSQL or
Redis variables. It migrates, creates the demo tenant, starts the Intuit emulator, a worker and
beat; the SDK client connects to the demo connector through the emulator's consent page and
calls tools; SIGINT stops everything; a second run reuses the data, and the connection made
before the restart (its QuickBooks grant kept by the emulator under VAR_DIR)."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import anyio
import httpx

from tests.support.live import free_port
from tests.support.mcp_client import MemoryStorage, connected, oauth_provider
from tests.support.oauth import Browser

ROOT = Path(__file__).resolve().parents[2]


class Serve:
    def __init__(self, env, *args: str):
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            assert self.process.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.1)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)


def wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "serve did not answer"
        time.sleep(0.2)


def embedded_env(tmp_path, base: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL")
    }
    env.update(VAR_DIR=str(tmp_path), PUBLIC_URL=base, UPSTREAM_SWEEP_SECONDS="2")
    return env


def demo_connection(browser: Browser, base: str, until, timeout: float = 120) -> dict:
    """The demo connector's QuickBooks connection as the API shows it, once ``until(it)``."""
    deadline = time.monotonic() + timeout
    while True:
        connectors = browser.http.get(f"{base}/api/v1/connectors/").json()["results"]
        demo = next(c for c in connectors if c["slug"] == "quickbooks")
        found = browser.http.get(f"{base}/api/v1/connectors/{demo['id']}/connections/").json()
        connections = found["results"]
        if connections and until(connections[0]):
            return connections[0]
        assert time.monotonic() < deadline, connections
        time.sleep(0.5)


def refreshed_at(connection: dict) -> datetime:
    return datetime.fromisoformat(connection["last_refresh_at"].replace("Z", "+00:00"))


async def call_query(url: str, browser: Browser, storage: MemoryStorage):
    async with connected(url, oauth_provider(url, browser, storage)) as client:
        return await client.call_tool(
            "query", {"query": "SELECT * FROM Customer", "max_results": 2}
        )


def test_serve_gives_a_working_demo_connector(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = embedded_env(tmp_path, base)
    storage = MemoryStorage()

    serve = Serve(env)
    try:
        url = serve.wait_for(r"connector:\s+(\S+)")[1]
        username, password = serve.wait_for(r"sign in:\s+(\S+) / (\S+)").groups()
        emulator = serve.wait_for(r"QuickBooks: emulator at (\S+)")[1]
        wait_ready(base)
        assert url == f"{base}/t/demo/quickbooks/mcp"

        unauthenticated = httpx.post(url, json={})
        assert unauthenticated.status_code == 401
        assert "resource_metadata=" in unauthenticated.headers["www-authenticate"]

        browser = Browser(username, password, also_visits=(emulator,))

        async def use_the_connector():
            provider = oauth_provider(url, browser, storage)
            async with connected(url, provider) as client:
                info = await client.call_tool("company_info", {})
                rows = await client.call_tool(
                    "query", {"query": "SELECT * FROM Customer", "max_results": 3}
                )
                return info, rows

        info, rows = anyio.run(use_the_connector)
        assert not info.is_error and info.structured_content["CompanyName"]
        assert not rows.is_error and len(rows.structured_content["rows"]) == 3
        assert any('name="decision"' in page.text for page in browser.pages)  # Intuit's page
        before_restart = demo_connection(browser, base, lambda c: True)

        children = _children_of(serve.process.pid)
        assert len(children) == 3, children  # emulator, worker, beat

        # Beat schedules the sweep and the worker runs it: readiness sees its heartbeat.
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/readyz").json()["checks"]["beat"] != "ok":
            assert time.monotonic() < deadline, "no sweep ran: worker or beat not working"
            time.sleep(0.5)
    finally:
        returncode = serve.stop()
    assert returncode == 0, "".join(serve.lines)
    assert "Stopped." in "".join(serve.lines)
    assert not [pid for pid in children if _alive(pid)], "serve left children running"

    # A second run reuses the database, the secrets and the demo sign-in.
    again = Serve(env)
    try:
        assert again.wait_for(r"sign in:\s+(\S+) / (\S+)").groups() == (username, password)
        wait_ready(base)
        assert httpx.post(url, json={}).status_code == 401
        # At start-up the worker asked the restarted emulator about the connection: it still
        # knows the grant, so the connection stays active (freshly refreshed).
        checked = demo_connection(
            browser,
            base,
            lambda c: c["status"] == "active" and refreshed_at(c) > refreshed_at(before_restart),
        )
        assert (checked["status"], checked["last_error"]) == ("active", "")
        # The client made before the restart calls a tool with its tokens: no new sign-in.
        pages = len(browser.pages)
        rows = anyio.run(call_query, url, browser, storage)
        assert not rows.is_error, rows
        assert len(rows.structured_content["rows"]) == 2
        assert len(browser.pages) == pages, "the client had to connect again"
    finally:
        assert again.stop() == 0


def test_serve_finds_a_dead_grant_at_start_up(tmp_path):
    """The emulator lost its memory while serve was down (its state file is gone): the
    connection shows "needs reconnect" with Intuit's reason before anyone calls a tool."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = embedded_env(tmp_path, base)
    storage = MemoryStorage()

    serve = Serve(env)
    try:
        url = serve.wait_for(r"connector:\s+(\S+)")[1]
        username, password = serve.wait_for(r"sign in:\s+(\S+) / (\S+)").groups()
        emulator = serve.wait_for(r"QuickBooks: emulator at (\S+)")[1]
        wait_ready(base)
        browser = Browser(username, password, also_visits=(emulator,))
        assert not anyio.run(call_query, url, browser, storage).is_error
        demo_connection(browser, base, lambda c: c["status"] == "active")
    finally:
        assert serve.stop() == 0
    (tmp_path / "quickbooks-emulator.json").unlink()

    again = Serve(env)
    try:
        again.wait_for(r"Platform on", timeout=300)  # a start on a busy machine is slow
        wait_ready(base)
        # Until the check, the row still says what it said before the restart (active, or
        # retrying a refresh the shutdown cut short).
        dead = demo_connection(browser, base, lambda c: c["status"] == "needs_reauth")
        assert "invalid_grant" in dead["last_error"]
        # The dashboard's connector page shows it, with the reason.
        connectors = browser.http.get(f"{base}/api/v1/connectors/").json()["results"]
        demo_id = next(c["id"] for c in connectors if c["slug"] == "quickbooks")
        page = browser.http.get(f"{base}/dashboard/connectors/{demo_id}/").text
        row = re.search(rf'data-connection-status="{dead["id"]}">([^<]+)<', page)
        assert row and row[1] == "Needs reconnect", page
        assert re.search(rf'data-connection-error="{dead["id"]}">[^<]*invalid_grant', page)
        # No tool call was needed to find out; the next one says what to do.
        pages = len(browser.pages)
        answer = anyio.run(call_query, url, browser, storage)
        assert answer.is_error and "reconnect" in answer.content[0].text, answer
        assert len(browser.pages) == pages
    finally:
        assert again.stop() == 0


def _children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in found.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running: it only waits for its parent to collect it.
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return state not in ("Z", "X")


def test_serve_port_without_public_url_advertises_that_port_everywhere(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL", "PUBLIC_URL", "PUBLIC_URL_FILE")
    }
    env.update(VAR_DIR=str(tmp_path))

    serve = Serve(env, "--port", str(port), "--no-worker")
    try:
        # A cold start (migrations, static files, the emulator) is slow on a busy machine.
        assert serve.wait_for(r"Platform on (\S+)", timeout=300)[1] == base
        url = serve.wait_for(r"connector:\s+(\S+)")[1]
        assert url == f"{base}/t/demo/quickbooks/mcp"
        wait_ready(base)

        challenge = httpx.post(url, json={}).headers["www-authenticate"]
        metadata_url = f"{base}/.well-known/oauth-protected-resource/t/demo/quickbooks/mcp"
        assert f'resource_metadata="{metadata_url}"' in challenge
        resource = httpx.get(metadata_url).json()
        assert resource["resource"] == url
        assert resource["authorization_servers"] == [base]
        issuer = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
        assert issuer["issuer"] == base
        assert issuer["authorization_endpoint"] == f"{base}/authorize"
    finally:
        returncode = serve.stop()
    assert returncode == 0, "".join(serve.lines)
