"""Benchmark: MCP tools/call on PostgreSQL with Django's psycopg pool (DB_POOL_SIZE=8, the
default) against no pool (DB_POOL_SIZE=0: CONN_MAX_AGE=0, a new connection for each unit of
database work), side by side in one run.

Under ASGI persistent connections (CONN_MAX_AGE > 0) are not an option: every Django request
runs in a thread of its own, so a kept connection is never reused and never closed (issue 16
measured idle connections climbing to max_connections). Those are the two choices left; this
measures which the gateway's hot path should run on. Each row is `bench/gateway_calls.py`'s
gateway measurement (server pinned to core 0, wrk to core 1, the bearer check and call
counting included) against a scratch PostgreSQL database on DATABASE_URL's server, which is
dropped afterwards; "per core" counts PostgreSQL's CPU with the server's.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        uv run python bench/db_pool.py --seconds 10 --connections 1 16 64
"""

import argparse
import functools
import os
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_calls  # noqa: E402


def main() -> None:
    # The one-time OAuth set-up (registration, sign-in: PBKDF2) may be slow on a busy machine.
    httpx.post = functools.partial(httpx.post, timeout=120)
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--pool-sizes", type=int, nargs="+", default=[0, 8])
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith(("postgres://", "postgresql://")):
        raise SystemExit("set DATABASE_URL=postgres://... (a server this may create a database on)")
    name = f"bench_pool_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    args.database_url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    workdir = Path(tempfile.mkdtemp(prefix="db-pool-bench-"))
    script = workdir / "tools_call.lua"
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in gateway_calls.HEADERS.items())
    script.write_text(gateway_calls.WRK_SCRIPT % {"body": gateway_calls.BODY, "headers": headers})
    print(
        f"{os.cpu_count()} cores; server pinned to core 0, wrk to core 1; {args.seconds:g} s "
        "per row; PostgreSQL; server = platform gateway with DB_POOL_SIZE as shown"
    )
    print(
        "| server | connections | tools/call per s | per core (calls per CPU-s) | p50 | p99 "
        "| CPU, % of one core: server | DB | wrk | other load | bad answers, socket errors |"
    )
    print("| --- |" + " ---: |" * 9 + " --- |", flush=True)
    try:
        for size in args.pool_sizes:
            os.environ["DB_POOL_SIZE"] = str(size)
            label = f"gateway, DB_POOL_SIZE={size}" + (" (no pool)" if size == 0 else "")
            gateway_calls.gateway(args, workdir, sys.executable, script, name=label)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
