"""Benchmark: tools/call and tools/list through the platform's gateway vs a bare mcp SDK server.

Both serve the same `echo` tool, stateless with JSON responses, from one uvicorn process each
with the same options, pinned to one core (`taskset -c 0`); all servers are up at once and
the rows alternate (bare, gateway on SQLite, gateway on PostgreSQL, then the next connection
count), so each ratio compares rows measured seconds apart under the same machine load. The
load generator is wrk (Debian's `wrk`, one thread, a small Lua script for the POST body and
headers) pinned to the other core, so it never takes the servers' CPU; every response is
checked (HTTP 200 and the method's answer).

    uv run python bench/gateway_calls.py --seconds 10 --connections 1 16 64 \
        --database-url postgres://postgres@127.0.0.1:5432/bench

"per core" is calls per CPU-second of the server process (with PostgreSQL, plus the CPU of
the benchmark database's backends and of PostgreSQL's background processes, WAL writer and
checkpointer, which count in full though other databases' writes land there too; other
databases' backends, e.g. a test run's, count as "other"); "x bare" is that divided by the
figure of the bare server with the same uvicorn options, in the same round; "server process
only" leaves PostgreSQL's CPU out. The uvicorn options are the image's (`--uvicorn`: `auto`
picks uvloop and httptools when installed, as the Dockerfile does; `asyncio`: the pure-Python
loop, h11).
The load average printed with each row is the machine's 1-minute figure: other engineers'
test runs share these 2 cores, so figures move by 10-20 % or more between runs; the ratios,
measured side by side, move less.

p50 and p99 are wrk's, which it corrects for coordinated omission before printing them: a
request that took S ms adds samples as if requests had kept coming every mean interval, so one
stall counts as the requests an open-loop client would have queued behind it.
bench/request_latency.py times each request itself, to tell a few long stalls from many short
delays.

The gateway run includes what a real request costs here: the bearer check (one query: token,
audience, connector, membership), the refusal checks, CORS, request ids, audit records and
call counting, with a member's real OAuth token.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = {
    # method: (request body, a string every good answer contains)
    "tools/call": (
        '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
        '"params":{"name":"echo","arguments":{"text":"hi"}}}',
        '"isError":false',
    ),
    "tools/list": ('{"jsonrpc":"2.0","id":1,"method":"tools/list"}', '"name":"echo"'),
}
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
wrk.method = "%(method)s"
%(body)s
%(headers)s
local tokens = {}
for token in string.gmatch(os.getenv("BENCH_TOKEN") or "", "%%S+") do
  table.insert(tokens, token)
end
if #tokens == 1 then wrk.headers["Authorization"] = "Bearer " .. tokens[1] end
if #tokens > 1 then  -- each request with the next token, as several clients would call
  local next = 0
  request = function()
    next = next %% #tokens + 1
    wrk.headers["Authorization"] = "Bearer " .. tokens[next]
    return wrk.format()
  end
end
bad = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, [[%(good)s]], 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("bad=%%d\\n", bad))
end
"""


def uvicorn_options(kind: str) -> list[str]:
    loop = ["--loop", "asyncio", "--http", "h11"] if kind == "asyncio" else []
    return ["--host", "127.0.0.1", *loop, "--no-access-log", "--log-level", "warning"]


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


def check_one(url: str, token: str | None, body: str, good: str) -> None:
    """One request as wrk will send it; exits unless the answer is 200 and contains ``good``."""
    headers = dict(HEADERS)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    if response.status_code != 200 or good not in response.text:
        raise SystemExit(f"{url}: unexpected answer {response.status_code} {response.text[:300]}")


def wrk_script(
    workdir: Path,
    name: str,
    body: str,
    good: str,
    method: str = "POST",
    headers: dict[str, str] = HEADERS,
) -> Path:
    """wrk's Lua script: ``method`` with ``body`` and ``headers`` (and BENCH_TOKEN as the
    bearer; several, space-separated, take turns), counting every answer that is not a 200
    containing ``good``."""
    script = workdir / f"{name}.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "method": method,
            "body": f"wrk.body = [[{body}]]" if body else "",
            "headers": "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
            "good": good,
        }
    )
    return script


def wrk(
    server: Server,
    seconds: float,
    connections: int,
    script: Path,
    also: dict[str, Callable[[procstat.Proc], bool]] | None = None,
) -> dict:
    """One wrk run against ``server``: rate, latency, bad answers and where the CPU went
    (``also``: more process groups to count apart, each reported as ``<name>_busy``)."""
    env = {**os.environ, "BENCH_TOKEN": server.token or ""}
    url = server.url
    command = pinned(
        1,
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
    )
    before = procstat.Snapshot.take()
    reaped_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate()
    elapsed = time.monotonic() - started
    reaped_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = procstat.Snapshot.take()
    if process.returncode:
        raise SystemExit(f"wrk failed:\n{out}")
    groups = {
        "server": procstat.by_pids({server.process.pid}),
        # wrk has exited by now: its time is in this process's reaped children (below)
        "bench": procstat.by_pids({os.getpid()}),
    }
    if server.db:
        groups["db"] = procstat.postgres_of(server.db)
    groups.update(also or {})
    cpu = procstat.cpu_by_group(before, after, groups)
    cpu["wrk"] = (reaped_after.ru_utime + reaped_after.ru_stime) - (
        reaped_before.ru_utime + reaped_before.ru_stime
    )
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
        "per_core_server": (requests - bad) / cpu["server"] if cpu["server"] else 0.0,
        "server_busy": 100 * cpu["server"] / elapsed,
        "db_busy": 100 * cpu.get("db", 0.0) / elapsed,
        "wrk_busy": 100 * cpu["wrk"] / elapsed,
        "other": 100 * cpu["other"] / elapsed,
        "load": os.getloadavg()[0],
        "seconds": elapsed,
        **{f"{name}_busy": 100 * cpu[name] / elapsed for name in also or {}},
    }


def in_order(servers: list[Server], *, reverse: bool) -> list[Server]:
    """``servers`` as they run in a round: each bare server first, then its gateways, in
    reverse order every other round. In one fixed order the same gateway always ran right after
    the same other one: goal 2's scaled gateway, always right after the one-tenant one, came
    out 7 % slower at 64 connections over five rounds, and +3.6 % (median of eight) with the
    two in alternating order (bench/RESULTS.md, sixth round)."""
    groups: list[list[Server]] = []
    for server in servers:
        if server.token is None or not groups:  # a bare server starts the group it anchors
            groups.append([])
        groups[-1].append(server)
    if reverse:
        groups = [[group[0], *reversed(group[1:])] for group in groups]
    return [server for group in groups for server in group]


def milliseconds(latency: str) -> float:
    """wrk's latency ("821.00us", "3.45ms", "1.64s") in milliseconds."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", latency).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def print_medians(method: str, rounds: dict[tuple[int, str], list[tuple]]) -> None:
    """Each server's rows over the rounds: the median of each round's ratio to that round's bare
    server, and of each round's p99 over that round's bare p99 (paired, as the calls per
    CPU-second are: the machine's drift between rounds cancels), and how often its p99 was at
    or below the bare server's in the same round. One round's p99 at one connection moves by
    more than the difference sought on a noisy machine."""
    print(f"\n{method}, medians over the rounds (each ratio against the same round's bare server)")
    print(
        "| connections | server | rounds | x bare, median (min-max) | server process only "
        "| p99 ms, median | bare p99 ms, median | p99 / bare's, median (min-max) "
        "| rounds with p99 <= bare's |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (connections, name), rows in rounds.items():
        ratio, alone, p99, bare_p99 = zip(*rows, strict=True)
        at_or_below = sum(mine <= bare for mine, bare in zip(p99, bare_p99, strict=True))
        tail = [mine / bare for mine, bare in zip(p99, bare_p99, strict=True)]
        print(
            f"| {connections} | {name} | {len(rows)} | {statistics.median(ratio):.2f} "
            f"({min(ratio):.2f}-{max(ratio):.2f}) | {statistics.median(alone):.2f} "
            f"| {statistics.median(p99):.2f} | {statistics.median(bare_p99):.2f} "
            f"| {statistics.median(tail):.2f} ({min(tail):.2f}-{max(tail):.2f}) "
            f"| {at_or_below} of {len(rows)} |",
            flush=True,
        )


@dataclass
class Server:
    name: str
    url: str
    token: str | None
    process: subprocess.Popen
    db: str  # the PostgreSQL database it uses ("" for none)
    cleanup: Callable[[], None] | None = None

    def stop(self) -> None:
        """Stop the process and undo what its start left in a shared database."""
        self.process.terminate()
        self.process.wait()
        if self.cleanup:
            self.cleanup()


UVICORN_KINDS = {
    "auto": "uvloop + httptools when installed (the image's and serve's)",
    "asyncio": "asyncio + h11",
}


def bare(workdir: Path, python: str, kind: str) -> Server:
    (workdir / "bare_echo.py").write_text(BARE_APP % {"log_level": "WARNING"})
    port = free_port()
    command = [python, "-m", "uvicorn", "bare_echo:app", "--port", str(port)]
    process = subprocess.Popen(
        pinned(0, [*command, *uvicorn_options(kind)]),
        cwd=workdir,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    wait_up(url, process)
    return Server(f"bare mcp SDK ({kind})", url, None, process, db="")


# Goal 2's data: other tenants (each an echo connector and a member) and live tokens spread
# over their connectors, written in bulk before the server starts.
SCALE = """
import secrets
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application
from authserver.models import TokenAudience
from tenants.models import Connector, Membership, Tenant
T, K, U = %(tenants)d, %(tokens)d, 1000
tenants = Tenant.objects.bulk_create([Tenant(slug=f"x{i}", name="x") for i in range(T)], 2000)
connectors = Connector.objects.bulk_create(
    [Connector(tenant=t, kind="echo", slug="echo") for t in tenants], 2000)
User = get_user_model()
users = User.objects.bulk_create([User(username=f"x{i}") for i in range(U)], 2000)
Membership.objects.bulk_create(
    [Membership(tenant=t, user=users[i %% U]) for i, t in enumerate(tenants)], 2000)
app = Application.objects.create(name="x", client_type="public",
    authorization_grant_type="authorization-code", redirect_uris="https://example.com/cb")
expires = timezone.now() + timedelta(days=1)
for start in range(0, K, 5000):
    tokens = AccessToken.objects.bulk_create([AccessToken(user=users[i %% U], application=app,
        token=secrets.token_urlsafe(30), scope="mcp", expires=expires)
        for i in range(start, min(K, start + 5000))])
    TokenAudience.objects.bulk_create([TokenAudience(connector=connectors[(start + j) %% T],
        access_token=token) for j, token in enumerate(tokens)])
"""


def gateway(
    workdir: Path,
    python: str,
    kind: str,
    database_url: str,
    scale: tuple[int, int] | None = None,
    root: Path = ROOT,
) -> Server:
    """The platform, with a member's real token for the echo connector; with ``scale``
    (tenants, tokens), on a database that holds that many more; from the checkout ``root``
    (another one: the code before a change, run side by side)."""
    name = f"gateway, {'PostgreSQL' if database_url else 'SQLite'} ({kind})"
    if scale:
        name += f", {scale[0]:,} tenants, {scale[1]:,} tokens"
    before = root != ROOT
    if before:
        name += f", {root.name}"
    return platform(
        workdir,
        python,
        kind,
        database_url,
        name=name,
        slug=f"gw{os.getpid()}{kind[:2]}{'b' if before else ''}",
        connector_kind="echo",
        connector_slug="echo",
        env_extra={"EXTRA_CONNECTOR_KINDS": "tests.support.kinds.echo_kind"},
        seed=SCALE % {"tenants": scale[0], "tokens": scale[1]} if scale else None,
        var_suffix="-scale" if scale else "",
        root=root,
    )


def platform(
    workdir: Path,
    python: str,
    kind: str,
    database_url: str,
    *,
    name: str,
    slug: str,
    connector_kind: str,
    connector_slug: str,
    env_extra: dict[str, str] | None = None,
    seed: str | None = None,
    prepare: str | None = None,
    var_suffix: str = "",
    app: str = "config.asgi:application",
    root: Path = ROOT,
) -> Server:
    """The platform in one uvicorn process pinned to core 0: tenant ``slug`` with member
    ``slug`` and a ``connector_kind`` connector ``connector_slug``, and that member's real OAuth
    token for it (register, sign in, consent, code exchange). ``seed`` runs in ``manage.py
    shell`` before the tenant is made, ``prepare`` after (``tenant``, ``connector`` and ``user``
    are bound); ``app`` is the ASGI application uvicorn serves (bench/ is on its path)."""
    port = free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(workdir / f"var-{port}{var_suffix}"),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(root / "platform"), str(root), str(root / "bench")]),
    }
    for variable in ("REDIS_URL", "CACHE_REDIS_URL", "DATABASE_URL"):
        env.pop(variable, None)
    env.update(env_extra or {})
    if database_url:
        env["DATABASE_URL"] = database_url
    manage = [python, str(root / "manage.py")]

    def run(*command: str) -> None:
        subprocess.run([*manage, *command], env=env, check=True, cwd=root, capture_output=True)

    def cleanup() -> None:
        if database_url:  # leave the shared database as it was
            run(
                "shell",
                "-c",
                "from django.contrib.auth import get_user_model as u; "
                "from tenants.models import Tenant; "
                f"Tenant.objects.filter(slug='{slug}').delete(); "
                f"u().objects.filter(username='{slug}').delete()",
            )

    run("migrate", "-v0")
    cleanup()  # a run that was cut short
    if seed:
        run("shell", "-c", seed)
    run("tenant", "create", slug)
    run("tenant", "add-member", slug, slug, "--password", "pw-bench-1")
    run("connector", "create", slug, connector_kind, "--slug", connector_slug)
    if prepare:
        bind = (
            "from django.contrib.auth import get_user_model\n"
            "from tenants.models import Connector\n"
            f"connector = Connector.objects.get(tenant__slug='{slug}', slug='{connector_slug}')\n"
            "tenant = connector.tenant\n"
            f"user = get_user_model().objects.get(username='{slug}')\n"
        )
        run("shell", "-c", bind + prepare)
    command = [python, "-m", "uvicorn", app, "--port", str(port)]
    process = subprocess.Popen(
        pinned(0, [*command, *uvicorn_options(kind)]),
        env=env,
        cwd=root,
        stderr=(workdir / f"platform-{port}.log").open("w"),  # ends with wrk's cut-off requests
    )
    url = f"http://127.0.0.1:{port}/t/{slug}/{connector_slug}/mcp"
    wait_up(url, process)
    if str(ROOT) not in sys.path:
        sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
    from tests.support.flow import OAuthClient
    from tests.support.oauth import Browser

    client = OAuthClient.register(f"http://127.0.0.1:{port}")
    token = client.tokens(Browser(slug, "pw-bench-1"), url)["access_token"]
    database = urlsplit(database_url).path.lstrip("/") if database_url else ""
    return Server(name, url, token, process, db=database, cleanup=cleanup)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument(
        "--database-url",
        default="",
        help="also run the gateway on this PostgreSQL database (e.g. .../bench)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        nargs=2,
        metavar=("TENANTS", "TOKENS"),
        help="also a gateway on SQLite with that many tenants and live tokens (goal 2)",
    )
    parser.add_argument(
        "--uvicorn",
        nargs="+",
        choices=["auto", "asyncio"],
        default=["auto"],
        help="uvicorn's loop and HTTP parser (several: each server once per choice)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="run every row this many times")
    parser.add_argument(
        "--before",
        type=Path,
        help="also each gateway from this other checkout (e.g. a worktree of main before a "
        "change; its own virtualenv's packages are this one's), rows interleaved",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    python = sys.executable
    scripts = {
        method: wrk_script(workdir, method.replace("/", "_"), body, good)
        for method, (body, good) in METHODS.items()
    }

    servers: list[Server] = []
    try:
        for kind in args.uvicorn:
            servers.append(bare(workdir, python, kind))
            # Each gateway from the other checkout first, then from this one.
            databases = ["", args.database_url] if args.database_url else [""]
            for database_url in databases:
                if args.before:
                    servers.append(
                        gateway(workdir, python, kind, database_url, root=args.before.resolve())
                    )
                servers.append(gateway(workdir, python, kind, database_url))
                if args.scale and not database_url:
                    servers.append(gateway(workdir, python, kind, "", scale=tuple(args.scale)))
        print(
            f"{os.cpu_count()} cores; each server one uvicorn process pinned to core 0, wrk "
            f"(1 thread) to core 1; {args.seconds:g} s per row; rows interleaved; uvicorn: "
            + ", ".join(f"{kind} = {UVICORN_KINDS[kind]}" for kind in args.uvicorn)
        )
        print(
            "| method | connections | server | calls/s | per core (calls per CPU-s) | x bare "
            "| server process only: per core | x bare | p50 | p99 "
            "| CPU % of a core: server | DB | wrk | other | load avg | bad, errors |"
        )
        print(
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: | ---: | ---: | --- |",
            flush=True,
        )
        for method in args.methods:
            for server in servers:
                check_one(server.url, server.token, *METHODS[method])
                wrk(server, 2, max(args.connections), scripts[method])  # warm up
            rounds: dict[tuple[int, str], list[tuple[float, float, float, float]]] = {}
            for round_, connections in [
                (n, c) for n in range(args.rounds) for c in args.connections
            ]:
                anchor = None
                for server in in_order(servers, reverse=round_ % 2 == 1):
                    r = wrk(server, args.seconds, connections, scripts[method])
                    p99 = milliseconds(r["p99"])
                    if server.token is None:  # a bare server: the anchor of the rows after it
                        anchor, anchor_p99 = r["per_core"], p99
                    ratio, alone = r["per_core"] / anchor, r["per_core_server"] / anchor
                    rounds.setdefault((connections, server.name), []).append(
                        (ratio, alone, p99, anchor_p99)
                    )
                    print(
                        f"| {method} | {connections} | {server.name} | {r['rate']:.0f} "
                        f"| {r['per_core']:.0f} | {ratio:.2f} "
                        f"| {r['per_core_server']:.0f} | {alone:.2f} "
                        f"| {r['p50']} | {r['p99']} | {r['server_busy']:.0f} | {r['db_busy']:.0f} "
                        f"| {r['wrk_busy']:.0f} | {r['other']:.0f} | {r['load']:.2f} "
                        f"| {r['bad']} {r['socket_errors']} |",
                        flush=True,
                    )
            if args.rounds > 1:
                print_medians(method, rounds)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
