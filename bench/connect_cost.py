"""Benchmark: what connecting a client costs the server (dynamic registration, authorize with
consent, code exchange), sign-in aside, and the web process's memory after many calls.

The platform runs as one uvicorn process pinned to core 0 (SQLite in a temporary VAR_DIR, the
image's uvicorn options, the echo connector kind: no upstream hop); this process drives it over
HTTP like a client would (the test suite's OAuthClient and Browser: a person already signed in
answers the consent page). "server CPU" is the uvicorn process's CPU time from /proc: /proc
counts in clock ticks (10 ms), so it is read around each batch of --batch flows, and the median
is that of the batches' per-flow figures. The wall times are per flow on loopback (client
included), median and 90th percentile. The target (issue 17) is a median <= 50 ms of server time
per flow. The SQL statements of a flow are counted in this process afterwards (Django's test
client on the same database, tests/support/connect.py), by step. Then it sends tools/call
requests and prints the process's resident memory (RSS) after each batch: it should level off.

    uv run python bench/connect_cost.py --flows 60 --calls 20000
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402
from gateway_calls import (  # noqa: E402
    HEADERS,
    METHODS,
    ROOT,
    free_port,
    pinned,
    uvicorn_options,
    wait_up,
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def flow_statements(base: str, flows: int) -> dict[str, list[int]]:
    """SQL statements (transaction control included) per step and for the whole flow, counted
    in this process with Django's test client on the server's database."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tests.support.connect import STEPS, connect_flow

    host = base.split("://", 1)[1]
    browser, client = Client(HTTP_HOST=host), Client(HTTP_HOST=host)
    browser.force_login(User.objects.get(username="bench"))
    resource = f"{settings.PUBLIC_URL}/t/bench/echo/mcp"
    counts: dict[str, list[int]] = {step: [] for step in (*STEPS, "whole flow")}

    @contextlib.contextmanager
    def step(name):
        with CaptureQueriesContext(connection) as captured:
            yield
        counts[name].append(len(captured.captured_queries))

    connect_flow(browser, client, resource)  # warm, as over HTTP
    for _ in range(flows):
        connect_flow(browser, client, resource, step)
        counts["whole flow"].append(sum(counts[name][-1] for name in STEPS))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=60)
    parser.add_argument("--batch", type=int, default=5, help="flows per CPU reading")
    parser.add_argument("--calls", type=int, default=20000, help="tools/call for the RSS figure")
    parser.add_argument("--uvicorn", choices=["auto", "asyncio"], default="auto")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="connect-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "VAR_DIR": str(workdir),
        "PUBLIC_URL": base,
        "EXTRA_CONNECTOR_KINDS": "tests.support.kinds.echo_kind",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT)]),
        "DCR_RATE_LIMIT": "1000000",
    }
    for name in ("REDIS_URL", "CACHE_REDIS_URL", "DATABASE_URL"):
        env.pop(name, None)
        os.environ.pop(name, None)
    os.environ.update(env, DJANGO_SETTINGS_MODULE="config.settings")  # flow_statements
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (
        ["migrate", "-v0"],
        ["tenant", "create", "bench"],
        ["tenant", "add-member", "bench", "bench", "--password", "pw-bench-1"],
        ["connector", "create", "bench", "echo", "--slug", "echo"],
    ):
        subprocess.run([*manage, *command], env=env, check=True, cwd=ROOT, capture_output=True)
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port)]
    server = subprocess.Popen(
        pinned(0, [*command, *uvicorn_options(args.uvicorn)]),
        env=env,
        cwd=ROOT,
        stderr=(workdir / "server.log").open("w"),
    )
    try:
        resource = f"{base}/t/bench/echo/mcp"
        wait_up(resource, server)
        sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
        from tests.support.flow import OAuthClient
        from tests.support.oauth import Browser

        browser = Browser("bench", "pw-bench-1")
        browser.sign_in(base)

        def flow() -> str:
            client = OAuthClient.register(base)
            code, verifier = client.code_for(browser, resource)
            response = client.exchange(code, verifier, resource)
            assert response.status_code == 200, response.text
            return response.json()["access_token"]

        token = flow()  # warm: first-use imports and caches are not what is measured
        walls, batches = [], []
        server_only = {"server": procstat.by_pids({server.pid})}
        first = before = procstat.Snapshot.take()
        for done in range(1, args.flows + 1):
            started = time.perf_counter()
            token = flow()
            walls.append((time.perf_counter() - started) * 1000)
            if done % args.batch == 0 or done == args.flows:
                after = procstat.Snapshot.take()
                cpu = procstat.cpu_by_group(before, after, server_only)["server"]
                batches.append(cpu * 1000 / (done - (len(batches) * args.batch)))
                before = after
        mean = procstat.cpu_by_group(first, before, server_only)["server"] * 1000 / args.flows
        load = os.getloadavg()[0]
        queries = flow_statements(base, min(args.flows, 20))
        walls.sort()
        print(f"load average {load:.2f}; {args.flows} flows (register, authorize with consent,")
        print("token), one signed-in person, echo connector (no upstream hop), SQLite, server")
        print(f"pinned to core 0; CPU read every {args.batch} flows")
        print("| figure | measured | target |")
        print("| --- | ---: | ---: |")
        median = statistics.median(batches)
        label = f"server CPU per flow, median of {len(batches)} batches"
        print(f"| {label} | {median:.1f} ms | 50 ms |")
        print(f"| server CPU per flow, mean | {mean:.1f} ms | |")
        print(f"| wall per flow, median | {statistics.median(walls):.1f} ms | |")
        print(f"| wall per flow, p90 | {walls[int(len(walls) * 0.9) - 1]:.1f} ms | |")
        for step, counts in queries.items():
            label = f"SQL statements with BEGIN/COMMIT, {step} (median)"
            print(f"| {label} | {statistics.median(counts):.0f} | |")

        body, good = METHODS["tools/call"]
        headers = {**HEADERS, "Authorization": f"Bearer {token}"}
        print(f"\nRSS of the web process after tools/call (load average {os.getloadavg()[0]:.2f})")
        print("| calls | RSS MB |")
        print("| ---: | ---: |")
        print(f"| 0 | {rss_mb(server.pid):.0f} |", flush=True)
        done, step = 0, max(1, args.calls // 5)
        with httpx.Client(timeout=30) as http:
            while done < args.calls:
                for _ in range(step):
                    response = http.post(resource, content=body, headers=headers)
                    assert response.status_code == 200 and good in response.text, response.text
                done += step
                print(f"| {done} | {rss_mb(server.pid):.0f} |", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
