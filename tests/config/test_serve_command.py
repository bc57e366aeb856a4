"""``uv run manage.py serve`` on the embedded default, as a newcomer runs it: no PostgreSQL or
Redis variables. It migrates, creates the demo tenant, starts the Intuit emulator, a worker and
beat; the SDK client connects to the demo connector through the emulator's consent page and
calls tools; SIGINT stops everything; a second run reuses the data."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
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


def test_serve_gives_a_working_demo_connector(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL")
    }
    env.update(VAR_DIR=str(tmp_path), PUBLIC_URL=base, UPSTREAM_SWEEP_SECONDS="2")

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
            provider = oauth_provider(url, browser, MemoryStorage())
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
