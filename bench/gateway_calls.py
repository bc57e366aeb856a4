"""Benchmark: tools/call per second through the platform's gateway vs a bare mcp SDK server.

Both serve the same `echo` tool, stateless with JSON responses, from one uvicorn process with
the same options (asyncio loop, h11, no access log), pinned to one core (`taskset -c 0`).
The load generator is wrk (Debian's `wrk`, one thread, a small Lua script for the POST body
and headers) pinned to the other core, so it never takes the server's CPU; its own CPU use is
printed, and the server's core should be near 100% busy: then the server is the bottleneck,
not the generator. Every response is checked (HTTP 200 and `"isError":false`).
The bare server runs twice: with the SDK's default log level (INFO: its stateless transport
then logs every request through Rich) and with WARNING, which is what the gateway runs with.

    uv run python bench/gateway_calls.py --seconds 20 --connections 1 4 16 64

"per core" is calls per CPU-second of the server process (and, with PostgreSQL, of the
database's processes too), which is what one more core buys.

The gateway run includes what a real request costs here: the bearer check (one query: token,
connector, membership), the audience and membership checks, CORS, request ids and call
counting. It uses the embedded default (SQLite, in the server's process, so on its core)
unless --database-url is given (e.g. the `bench` PostgreSQL database: then PostgreSQL runs on
any core and its CPU is added to the server's for "per core").
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'  # noqa: E501
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}
BARE_APP = '''
from mcp.server import MCPServer

server = MCPServer("echo", log_level="%(log_level)s")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


app = server.streamable_http_app(stateless_http=True, json_response=True)
'''
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
%(headers)s
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
bad = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"isError":false', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("bad=%%d\\n", bad))
end
"""
UVICORN_OPTIONS = [
    "--host",
    "127.0.0.1",
    "--loop",
    "asyncio",
    "--http",
    "h11",
    "--no-access-log",
    "--log-level",
    "warning",
]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def wait_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server for {url} exited")
        try:
            httpx.post(url, json={}, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def check_one(url: str, token: str | None) -> None:
    headers = dict(HEADERS)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = httpx.post(url, content=BODY, headers=headers, timeout=10)
    if response.status_code != 200 or response.json()["result"]["isError"] is not False:
        raise SystemExit(f"{url}: unexpected answer {response.status_code} {response.text[:300]}")


def wrk(
    url: str,
    token: str | None,
    seconds: float,
    connections: int,
    script: Path,
    server_pids: set[int],
    db: bool,
) -> dict:
    env = {**os.environ, "BENCH_TOKEN": token or ""}
    command = pinned(
        1,
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
    )
    before = procstat.Snapshot.take()
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate()
    elapsed = time.monotonic() - started
    after = procstat.Snapshot.take()
    if process.returncode:
        raise SystemExit(f"wrk failed:\n{out}")
    wrk_pids = procstat.descendants(after, process.pid) | {process.pid}
    groups = {
        "server": procstat.by_pids(server_pids),
        "wrk": lambda p: p.pid in wrk_pids or p.comm == "wrk",
        "bench": procstat.by_pids({os.getpid()}),
    }
    if db:
        groups["db"] = procstat.by_comm("postgres")
    cpu = procstat.cpu_by_group(before, after, groups)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = int(re.search(r"bad=(\d+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    server_cpu = cpu["server"] + cpu.get("db", 0.0)
    return {
        "rate": requests / float(seconds),
        "requests": requests,
        "bad": bad + (int(non2xx.group(1)) if non2xx else 0),
        "socket_errors": errors.group(1) if errors else "",
        "p50": latency.get("50", "?"),
        "p99": latency.get("99", "?"),
        "per_core": (requests - bad) / server_cpu if server_cpu else 0.0,
        "server_busy": 100 * cpu["server"] / elapsed,
        "db_busy": 100 * cpu.get("db", 0.0) / elapsed,
        "wrk_busy": 100 * cpu["wrk"] / elapsed,
        "other": 100 * cpu["other"] / elapsed,
    }


def measure(
    name: str, url: str, token: str | None, server: subprocess.Popen, args, script: Path, db: bool
) -> None:
    check_one(url, token)
    server_pids = {server.pid}
    wrk(url, token, 3, max(args.connections), script, server_pids, db)  # warm up
    for connections in args.connections:
        r = wrk(url, token, args.seconds, connections, script, server_pids, db)
        print(
            f"| {name} | {connections} | {r['rate']:.0f} | {r['per_core']:.0f} "
            f"| {r['p50']} | {r['p99']} | {r['server_busy']:.0f} | {r['db_busy']:.0f} "
            f"| {r['wrk_busy']:.0f} | {r['other']:.0f} | {r['bad']} {r['socket_errors']} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument(
        "--database-url",
        default="",
        help="the gateway's database (default: SQLite in a temporary folder)",
    )
    parser.add_argument("--only", choices=["bare", "gateway"], default=None)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    python = sys.executable
    script = workdir / "tools_call.lua"
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in HEADERS.items())
    script.write_text(WRK_SCRIPT % {"body": BODY, "headers": headers})

    print(
        f"{os.cpu_count()} cores; server pinned to core 0, wrk (1 thread) to core 1; "
        f"{args.seconds:g} s per row; gateway database: "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}"
    )
    print(
        "| server | connections | tools/call per s | per core (calls per CPU-s) | p50 | p99 "
        "| CPU, % of one core: server | DB | wrk | other load | bad answers, socket errors |"
    )
    print(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |", flush=True
    )

    if args.only in (None, "bare"):
        # The SDK's default log level is INFO, and its stateless transport logs every request
        # through a Rich handler: measured both ways; WARNING is what the gateway runs with.
        for log_level in ("INFO", "WARNING"):
            (workdir / "bare_echo.py").write_text(BARE_APP % {"log_level": log_level})
            port = free_port()
            command = [python, "-m", "uvicorn", "bare_echo:app", "--port", str(port)]
            bare = subprocess.Popen(
                pinned(0, [*command, *UVICORN_OPTIONS]), cwd=workdir, stderr=subprocess.DEVNULL
            )
            try:
                url = f"http://127.0.0.1:{port}/mcp"
                wait_up(url, bare)
                name = f"bare mcp SDK, log_level={log_level}"
                measure(name, url, None, bare, args, script, db=False)
            finally:
                bare.terminate()
                bare.wait()

    if args.only in (None, "gateway"):
        gateway(args, workdir, python, script)


def gateway(args, workdir: Path, python: str, script: Path, name: str = "platform gateway") -> None:
    """The platform, with a member's real token for the echo connector."""
    port = free_port()
    slug = f"gw{os.getpid()}"
    env = {
        **os.environ,
        "VAR_DIR": str(workdir),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "EXTRA_CONNECTOR_KINDS": "tests.support.kinds.echo_kind",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT)]),
    }
    env.pop("REDIS_URL", None)
    env.pop("CACHE_REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    manage = [python, str(ROOT / "manage.py")]

    def run(*command: str) -> None:
        subprocess.run([*manage, *command], env=env, check=True, cwd=ROOT, capture_output=True)

    run("migrate", "-v0")
    run("tenant", "create", slug)
    run("tenant", "add-member", slug, slug, "--password", "pw-bench-1")
    run("connector", "create", slug, "echo", "--slug", "echo")
    web = subprocess.Popen(
        pinned(
            0,
            [
                python,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--port",
                str(port),
                "--proxy-headers",
                *UVICORN_OPTIONS,
            ],
        ),
        env=env,
        cwd=ROOT,
        stderr=(workdir / "gateway.log").open("w"),  # ends with wrk's cut-off requests
    )
    try:
        url = f"http://127.0.0.1:{port}/t/{slug}/echo/mcp"
        wait_up(url, web)
        sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
        from tests.support.flow import OAuthClient
        from tests.support.oauth import Browser

        client = OAuthClient.register(f"http://127.0.0.1:{port}")
        token = client.tokens(Browser(slug, "pw-bench-1"), url)["access_token"]
        measure(name, url, token, web, args, script, db=bool(args.database_url))
    finally:
        web.terminate()
        web.wait()
        if args.database_url:  # leave the shared database as it was
            run(
                "shell",
                "-c",
                "from django.contrib.auth import get_user_model as u; "
                "from tenants.models import Tenant; "
                f"Tenant.objects.filter(slug='{slug}').delete(); "
                f"u().objects.filter(username='{slug}').delete()",
            )


if __name__ == "__main__":
    main()
