"""Benchmark: the web process's resident memory (RSS) after many MCP calls, beside a bare mcp SDK
server's (the anchor), and over a long run.

Both servers are started as `bench/gateway_calls.py` starts them (one uvicorn process pinned to
core 0, the image's uvicorn options; the bare server is the same echo server; the platform on
SQLite in a temporary VAR_DIR, or on ``--database-url``'s PostgreSQL; without Redis) and
driven by wrk (one thread, 16 connections, pinned to core 1) with tools/call of the echo tool.
Calls to the platform are spread over several members' tokens (``--tokens``), each from its
own registered client, as several clients would call it; every answer is checked. Python runs
from compiled bytecode, as in the image (UV_COMPILE_BYTECODE): the servers import from a
bytecode cache in the run's folder (PYTHONPYCACHEPREFIX, filled before they start), so a
checkout's interpreter that compiles its sources at every start (PYTHONDONTWRITEBYTECODE) does
not count the compiler's memory as the server's. MALLOC_ARENA_MAX is left as the environment
has it (unset, as under ``manage.py serve``): the platform's web process limits its malloc
arenas to the image's 2 itself (config.asgi.malloc_arenas_limit); the bare server keeps
glibc's default, as a bare SDK server would run. With
``--no-dev`` both run in an environment of the run's own with the project's runtime dependencies
only, as the image installs them: a checkout's test and lint tools bring packages (rich,
pygments) that the mcp SDK and DRF import when they find them, about 3 MB in each server.

The first table: RSS when idle (after the platform served the OAuth flows that made the
tokens) and after every fifth of ``--calls`` calls (the target, issue 17: <= 120 MB after
100,000). With ``--minutes``, the platform then keeps serving calls that long, RSS sampled
every ``--every`` seconds: first, last and largest sample (the target: no growth).

    uv run python bench/web_memory.py --calls 100000 --minutes 10
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_calls import (  # noqa: E402
    METHODS,
    ROOT,
    Server,
    bare,
    check_one,
    gateway,
    pinned,
    wrk_script,
)

CONNECTIONS = 16


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def calls_for(seconds: float, server: Server, tokens: list[str], script: Path) -> int:
    """wrk against ``server`` for ``seconds``: the number of calls answered (all good, or exit)."""
    env = {**os.environ, "BENCH_TOKEN": " ".join(tokens)}
    command = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "-s",
        str(script),
        server.url,
    ]
    done = subprocess.run(pinned(1, command), env=env, capture_output=True, text=True)
    out = done.stdout
    if not (count := re.search(r"(\d+) requests in", out)):
        raise SystemExit(
            f"wrk failed ({done.returncode}), server exit status {server.process.poll()}: "
            f"{out}{done.stderr}"
        )
    requests = int(count.group(1))
    bad = int(re.search(r"bad=(\d+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad or non2xx:
        raise SystemExit(f"{server.name}: bad answers\n{out}")
    return requests


def rss_after_calls(server: Server, tokens: list[str], script: Path, calls: int) -> None:
    """Print RSS when idle and after each fifth of ``calls`` (a row each)."""

    def row(done: int) -> None:
        rss = rss_mb(server.process.pid)
        print(f"| {server.name} | {done if done else 'idle'} | {rss:.1f} |", flush=True)

    row(0)
    done, step, last = 0, max(1, calls // 5), 0
    while done < calls:
        done += calls_for(2, server, tokens, script)
        if done // step > last // step or done >= calls:
            row(done)
            last = done


def runtime_python(workdir: Path) -> str:
    """A Python environment with the project's runtime dependencies only, as the image installs
    them (``uv sync --no-dev``): without the test and lint tools, some of whose packages other
    libraries import when they find them (rich by the mcp SDK, pygments by DRF)."""
    venv = workdir / "venv"
    subprocess.run(
        ["uv", "sync", "--frozen", "--no-dev", "--quiet"],
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
    )
    return str(venv / "bin" / "python")


def bytecode_cache(workdir: Path, python: str = sys.executable) -> None:
    """Compile what the servers import into a cache of the run's own, as the image ships it."""
    os.environ["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"]
    paths = subprocess.run(
        [python, "-c", "import sys; print(*sys.path, sep=chr(10))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    packages = [p for p in paths if p.endswith("site-packages")]
    subprocess.run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "2",
            *packages,
            str(ROOT / "platform"),
            str(ROOT / "connectors"),
            str(ROOT / "tests" / "support"),
        ],
        check=False,  # a few test fixtures in third-party packages do not compile; no matter
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=10, help="members' tokens the calls use")
    parser.add_argument("--minutes", type=float, default=0, help="then a long run this long")
    parser.add_argument("--every", type=float, default=30, help="seconds between RSS samples")
    parser.add_argument("--uvicorn", choices=["auto", "asyncio"], default="auto")
    parser.add_argument(
        "--database-url", default="", help="the platform on this PostgreSQL database instead"
    )
    parser.add_argument(
        "--no-dev",
        action="store_true",
        help="both servers in an environment without the dev dependencies, as the image runs",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="web-memory-bench-"))
    python = runtime_python(workdir) if args.no_dev else sys.executable
    bytecode_cache(workdir, python)
    body, good = METHODS["tools/call"]
    script = wrk_script(workdir, "tools_call", body, good)

    servers: list[Server] = []
    try:
        servers.append(bare(workdir, python, args.uvicorn))
        platform = gateway(workdir, python, args.uvicorn, args.database_url)
        servers.append(platform)
        tokens = [platform.token, *more_tokens(platform, args.tokens - 1)]
        for server in servers:
            check_one(server.url, server.token, body, good)
        print(
            f"load average {os.getloadavg()[0]:.2f}; RSS of one uvicorn process ({args.uvicorn}) "
            f"pinned to core 0; wrk: {CONNECTIONS} connections on core 1, tools/call of echo; "
            f"the platform on {'PostgreSQL' if args.database_url else 'SQLite'}, "
            f"{len(tokens)} tokens; "
            f"{'runtime dependencies only' if args.no_dev else 'with the dev dependencies'}; "
            f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')}"
        )
        print("| server | calls | RSS MB |")
        print("| --- | ---: | ---: |", flush=True)
        for server in servers:
            rss_after_calls(server, tokens if server.token else [], script, args.calls)
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
        if args.minutes:
            long_run(platform, tokens, script, args.minutes, args.every)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def more_tokens(platform: Server, count: int) -> list[str]:
    """``count`` more tokens of the platform's bench member, each from a client of its own."""
    from tests.support.flow import OAuthClient
    from tests.support.oauth import Browser

    base = platform.url.split("/t/")[0]
    member = platform.url.split("/t/")[1].split("/")[0]  # gateway() names tenant and member alike
    browser = Browser(member, "pw-bench-1")
    browser.sign_in(base)
    return [
        OAuthClient.register(base).tokens(browser, platform.url)["access_token"]
        for _ in range(count)
    ]


def long_run(platform: Server, tokens: list[str], script: Path, minutes: float, every: float):
    """Calls for ``minutes``, RSS sampled every ``every`` seconds (each sample printed as it is
    taken), then the first, largest and last sample."""
    print(f"\n{platform.name}: {minutes:g} minutes of calls, RSS every {every:g} s")
    print("| sample | seconds | calls | RSS MB |")
    print("| --- | ---: | ---: | ---: |")

    def sample(label: str, seconds: float, count: int, rss: float) -> None:
        print(f"| {label} | {seconds:.0f} | {count} | {rss:.1f} |", flush=True)

    samples = [(0.0, 0, rss_mb(platform.process.pid))]
    sample("", *samples[0])
    started, calls = time.monotonic(), 0
    while (elapsed := time.monotonic() - started) < minutes * 60:
        calls += calls_for(min(every, minutes * 60 - elapsed), platform, tokens, script)
        samples.append((time.monotonic() - started, calls, rss_mb(platform.process.pid)))
        sample("", *samples[-1])
    for label, taken in (
        ("first", samples[0]),
        ("largest", max(samples, key=lambda s: s[2])),
        ("last", samples[-1]),
    ):
        sample(f"**{label}**", *taken)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
