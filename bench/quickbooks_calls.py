"""Benchmark: QuickBooks tools/call through the platform, against the Intuit emulator (goal 3).

The platform runs in one uvicorn process pinned to core 0 (gateway_calls' uvicorn options),
with a member's real OAuth token for a QuickBooks connector and that member's connection to a
company at the emulator; the emulator runs in its own uvicorn process pinned to core 1, with
no injected latency and no request limits (Intuit's, in the emulator, and the connector's own
per-company throttle, raised out of reach: both would cap the rate at 10 calls/s). wrk (one
thread) shares core 1 with the emulator. Every answer is checked: HTTP 200 and
``"isError":false``.

    uv run python bench/quickbooks_calls.py --seconds 10 --connections 1 16 64 \
        --database-url postgres://postgres@127.0.0.1:5432/bench

Each round (one connection count) runs the anchor first: the emulator answering the same
upstream request directly (the path, query and token the platform sent, replayed by wrk), so
its calls per CPU-second say what Intuit's side costs; then the platform on SQLite and on
PostgreSQL (--database-url), seconds apart. "platform" is the uvicorn process; with PostgreSQL,
"DB" is every PostgreSQL process (other users of the shared server land there too).
"per CPU-s" divides the good calls by the platform's CPU (plus DB) and then by all of it plus
the emulator's; "CPU ms/call" splits one call's CPU between platform, DB and emulator.

SQL per call is counted in the server, by a counter only this benchmark loads
(bench/sql_counting.py wraps Django's cursor), over each row: statements divided by the
upstream requests the emulator answered meanwhile (one per tool call, cut-off ones included);
"writes" lists the write statements of the row (the audit batch, last_used_at once a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402
from gateway_calls import (  # noqa: E402
    UVICORN_KINDS,
    Server,
    check_one,
    platform,
    wrk,
    wrk_script,
)
from intuit_emulator import CLIENT_ID, CLIENT_SECRET, Emulator  # noqa: E402

# tool: (arguments, with {customer} for a customer's Id; what the emulator's answer contains)
TOOLS = {
    "get_record": ({"entity": "Customer", "id": "{customer}"}, '"Customer"'),
    "list_invoices": ({"status": "open", "max_results": 10}, '"QueryResponse"'),
}
# Upstream connection of the member, stored as the browser hop would (tests/support/emulator).
STORE_CONNECTION = """
import json
from connectors.base import UpstreamTokens
from upstream.services import upstream_connection_store
issued = json.loads(%r)
upstream_connection_store(connector=connector, user=user, provider="quickbooks",
    tokens=UpstreamTokens(access_token=issued["access_token"],
        refresh_token=issued["refresh_token"], expires_in=issued["expires_in"],
        refresh_expires_in=issued["x_refresh_token_expires_in"],
        external_account_id=issued["realmId"]))
"""


@dataclass
class Platform:
    server: Server
    counts: Path  # where bench/sql_counting.py writes its counts on SIGUSR1

    def sql_counts(self) -> dict[str, int]:
        self.counts.unlink(missing_ok=True)
        os.kill(self.server.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not self.counts.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the platform did not write its SQL counts")
            time.sleep(0.02)
        return json.loads(self.counts.read_text())


def start_platform(
    workdir: Path, python: str, kind: str, database_url: str, emulator: Emulator
) -> tuple[Platform, dict]:
    """The platform with a QuickBooks connector, its member connected to a new company."""
    issued = emulator.issue_tokens()
    slug = f"qb{os.getpid()}{'pg' if database_url else 'sq'}"
    counts = workdir / f"sql-{slug}.json"
    server = platform(
        workdir,
        python,
        kind,
        database_url,
        name=f"platform, {'PostgreSQL' if database_url else 'SQLite'} ({kind})",
        slug=slug,
        connector_kind="quickbooks",
        connector_slug="qbo",
        env_extra={
            "QUICKBOOKS_ENVIRONMENT": emulator.url,
            "QUICKBOOKS_CLIENT_ID": CLIENT_ID,
            "QUICKBOOKS_CLIENT_SECRET": CLIENT_SECRET,
            "QUICKBOOKS_THROTTLE_PER_SECOND": "1000000",
            "QUICKBOOKS_THROTTLE_PER_MINUTE": "60000000",
            "BENCH_SQL_COUNTS": str(counts),
        },
        prepare=STORE_CONNECTION % json.dumps(issued),
        app="sql_counting:application",
    )
    return Platform(server, counts), issued


def first_customer(emulator: Emulator, issued: dict) -> str:
    response = httpx.get(
        f"{emulator.url}/v3/company/{issued['realmId']}/query",
        params={"query": "SELECT * FROM Customer", "minorversion": "75"},
        headers={"Authorization": f"Bearer {issued['access_token']}", "Accept": "application/json"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["QueryResponse"]["Customer"][0]["Id"]


def tool_body(tool: str, customer: str) -> str:
    arguments = json.loads(json.dumps(TOOLS[tool][0]).replace("{customer}", customer))
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        },
        separators=(",", ":"),
    )


def last_upstream_request(emulator: Emulator) -> str:
    """Path and query of the last Accounting API request the emulator answered."""
    response = emulator.http.get("/_emulator/requests")
    response.raise_for_status()
    records = [r for r in response.json() if r["path"].startswith("/v3/")]
    last = records[-1]
    return f"{last['path']}?{urlencode(last['query'])}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--tools", nargs="+", choices=list(TOOLS), default=["get_record"])
    parser.add_argument(
        "--database-url",
        default="",
        help="also run the platform on this PostgreSQL database (e.g. .../bench)",
    )
    parser.add_argument("--uvicorn", choices=list(UVICORN_KINDS), default="auto")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="quickbooks-bench-"))
    python = sys.executable
    emulator = Emulator(core=1)
    emulator.unthrottled()
    emulator_group = {"emulator": procstat.by_pids({emulator.process.pid})}
    platforms: list[tuple[Platform, dict]] = []
    try:
        platforms.append(start_platform(workdir, python, args.uvicorn, "", emulator))
        if args.database_url:
            platforms.append(
                start_platform(workdir, python, args.uvicorn, args.database_url, emulator)
            )
        print(
            f"{os.cpu_count()} cores; platform: one uvicorn process pinned to core 0 "
            f"({args.uvicorn} = {UVICORN_KINDS[args.uvicorn]}); Intuit emulator: its own "
            "uvicorn process pinned to core 1, no injected latency, no request limits; wrk "
            f"(1 thread) on core 1; {args.seconds:g} s per row; rows interleaved"
        )
        print(
            "| tool | connections | server | calls/s | calls per CPU-s: platform (+DB) "
            "| emulator | all | p50 | p99 | CPU % of a core: platform | DB | emulator "
            "| wrk | other | CPU ms/call: platform | DB | emulator | SQL/call "
            "| writes in the row | upstream requests/call | load avg | bad, errors |"
        )
        print("| --- | ---: | --- |" + " ---: |" * 15 + " --- | ---: | ---: | --- |", flush=True)
        for tool in args.tools:
            rows = []  # (server, script, platform or None)
            for index, (plat, issued) in enumerate(platforms):
                body = tool_body(tool, first_customer(emulator, issued))
                script = wrk_script(workdir, f"{tool}-{index}", body, '"isError":false')
                check_one(plat.server.url, plat.server.token, body, '"isError":false')
                if index == 0:  # the anchor: the same upstream request, straight to the emulator
                    path = last_upstream_request(emulator)
                    anchor = Server(
                        "emulator directly (anchor)",
                        emulator.url + path,
                        issued["access_token"],
                        emulator.process,
                        db="",
                    )
                    anchor_script = wrk_script(
                        workdir,
                        f"{tool}-anchor",
                        "",
                        TOOLS[tool][1],
                        method="GET",
                        headers={"Accept": "application/json"},
                    )
                    check_anchor(anchor)
                    rows.append((anchor, anchor_script, None))
                rows.append((plat.server, script, plat))
            for server, script, _ in rows:  # warm up
                wrk(server, 2, max(args.connections), script)
            for connections in args.connections:
                for server, script, plat in rows:
                    line = row(
                        tool,
                        connections,
                        server,
                        script,
                        plat,
                        emulator,
                        emulator_group,
                        args.seconds,
                    )
                    print(line, flush=True)
    finally:
        for plat, _ in platforms:
            plat.server.stop()
        emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def check_anchor(anchor: Server) -> None:
    response = httpx.get(
        anchor.url,
        headers={"Authorization": f"Bearer {anchor.token}", "Accept": "application/json"},
        timeout=30,
    )
    if response.status_code != 200:
        raise SystemExit(f"the emulator answered {response.status_code}: {response.text[:300]}")


def row(
    tool: str,
    connections: int,
    server: Server,
    script: Path,
    plat: Platform | None,
    emulator: Emulator,
    emulator_group: dict,
    seconds: float,
) -> str:
    """One table row: wrk against ``server`` (the platform, or with ``plat`` None the emulator
    directly), with the SQL the platform ran and the upstream requests the emulator answered."""
    if plat is None:
        r = wrk(server, seconds, connections, script)
        r.update(emulator_busy=r["server_busy"], server_busy=None, db_busy=None)
    else:
        sql_before, upstream_before = plat.sql_counts(), emulator.counters().get("api.requests", 0)
        r = wrk(server, seconds, connections, script, also=emulator_group)
        time.sleep(0.5)  # the calls wrk cut off finish (their statements, upstream requests)
        sql_after, upstream_after = plat.sql_counts(), emulator.counters().get("api.requests", 0)
    good = r["requests"] - r["bad"]

    def per_cpu_second(*busy: float | None) -> str:
        cpu = sum(b for b in busy if b) / 100 * r["seconds"]
        return f"{good / cpu:.0f}" if cpu and good else ""

    def ms_per_call(busy: float | None) -> str:
        return "" if busy is None or not good else f"{busy / 100 * r['seconds'] * 1000 / good:.2f}"

    def pct(busy: float | None) -> str:
        return "" if busy is None else f"{busy:.0f}"

    sql = written = upstream_per_call = ""
    if plat is not None:
        upstream = upstream_after - upstream_before
        statements = sql_after.get("statements", 0) - sql_before.get("statements", 0)
        writes = {
            name: sql_after[name] - sql_before.get(name, 0)
            for name in sql_after
            if name != "statements" and sql_after[name] != sql_before.get(name, 0)
        }
        sql = f"{statements / upstream:.2f}" if upstream else "?"
        written = ", ".join(f"{n} x {name}" for name, n in sorted(writes.items())) or "none"
        upstream_per_call = f"{upstream / good:.3f}" if good else "?"
    cells = [
        tool,
        str(connections),
        server.name,
        f"{r['rate']:.0f}",
        per_cpu_second(r["server_busy"], r["db_busy"]) if plat else "",
        per_cpu_second(r["emulator_busy"]),
        per_cpu_second(r["server_busy"], r["db_busy"], r["emulator_busy"]),
        r["p50"],
        r["p99"],
        pct(r["server_busy"]),
        pct(r["db_busy"]),
        pct(r["emulator_busy"]),
        pct(r["wrk_busy"]),
        pct(r["other"]),
        ms_per_call(r["server_busy"]),
        ms_per_call(r["db_busy"]),
        ms_per_call(r["emulator_busy"]),
        sql,
        written,
        upstream_per_call,
        f"{r['load']:.2f}",
        f"{r['bad']} {r['socket_errors']}".strip(),
    ]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
