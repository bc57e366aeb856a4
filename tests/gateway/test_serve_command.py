"""``manage.py serve`` on the embedded default: web, worker and beat; stops on SIGINT."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_serve_migrates_and_answers_as_an_mcp_server(tmp_path):
    port = free_port()
    env = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        VAR_DIR=str(tmp_path),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        EXTRA_CONNECTOR_KINDS="tests.support.kinds.echo_kind",
        UPSTREAM_SWEEP_SECONDS="2",
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    subprocess.run(
        [*manage, "tenant", "create", "acme"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    subprocess.run(
        [*manage, "connector", "create", "acme", "echo"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [*manage, "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        response = httpx.post(f"http://127.0.0.1:{port}/t/acme/echo/mcp", json={})
        assert response.status_code == 401
        assert "resource_metadata=" in response.headers["www-authenticate"]
        # Beat schedules the upstream sweep, the worker runs it: readiness sees its heartbeat.
        deadline = time.monotonic() + 60
        while httpx.get(f"http://127.0.0.1:{port}/readyz").json()["checks"]["beat"] != "ok":
            assert time.monotonic() < deadline, "no sweep ran: worker or beat not working"
            time.sleep(0.5)
        assert (tmp_path / "platform.sqlite3").exists()
        assert (tmp_path / "secret_key").exists()
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert f"http://127.0.0.1:{port}" in output
