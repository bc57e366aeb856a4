"""The Intuit emulator in its own uvicorn process, steered over its /_emulator endpoints
(bench/refresh_throughput.py, bench/quickbooks_calls.py): in the benchmark's own process it
would share the GIL with the bookkeeping."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from gateway_calls import free_port, pinned

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID, CLIENT_SECRET = "bench", "bench-secret"
EMULATOR = """
import sys, uvicorn
from connectors.quickbooks.emulator import create_app
port, client_id, client_secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
app = create_app(base_url=f"http://127.0.0.1:{port}", client_id=client_id,
                 client_secret=client_secret)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


class Emulator:
    """The emulator in its own process (pinned to ``core`` when given), steered over HTTP."""

    def __init__(self, core: int | None = None) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")])}
        command = [sys.executable, "-c", EMULATOR, str(port), CLIENT_ID, CLIENT_SECRET]
        self.process = subprocess.Popen(
            command if core is None else pinned(core, command), env=env, cwd=ROOT
        )
        self.http = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.http.get("/_emulator/state").raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("the emulator did not start") from None
                time.sleep(0.2)

    def post(self, path: str, body: dict) -> dict:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def configure(self, **settings) -> None:
        self.post("/_emulator/config", settings)

    def unthrottled(self) -> None:
        """No Intuit request limits: the benchmark measures CPU, not Intuit's windows."""
        self.configure(throttle_per_second=None, throttle_per_minute=None, throttle_concurrent=None)

    def slow_token_endpoint(self, delay: float) -> None:
        self.post(
            "/_emulator/faults",
            {"endpoint": "token", "kind": "slow", "delay": delay, "count": None},
        )

    def clear_faults(self) -> None:
        self.http.delete("/_emulator/faults").raise_for_status()

    def issue_tokens(self) -> dict:
        return self.post("/_emulator/tokens", {})

    def counters(self) -> dict[str, int]:
        response = self.http.get("/_emulator/counters")
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=30)
