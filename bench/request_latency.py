"""Benchmark: tools/call latency request by request at one connection, the bare mcp SDK server
and the gateway side by side, and where the slow requests fall in time.

wrk (bench/gateway_calls.py) corrects its percentiles for coordinated omission: a request that
took S ms adds samples as if requests had kept arriving every mean interval meanwhile, so a
stall counts as the requests an open-loop client would have queued behind it. That is the
figure to meet, but it cannot tell a few long stalls from many short delays. This client times
each request of one keep-alive connection itself (no correction), pinned to core 1, against
the same servers as bench/gateway_calls.py (each one uvicorn process pinned to core 0), and
prints each server's percentiles and its slow requests (over ``--slow`` ms): how many, and the
time of the first few from the first one, so that one sees e.g. ten in a row every ~285 ms
(an audit flush) or a few scattered.

    uv run python bench/request_latency.py --seconds 6 --rounds 2 [--before <checkout>]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_calls  # noqa: E402


def timed_requests(server: gateway_calls.Server, seconds: float) -> list[tuple[float, float]]:
    """(start, seconds taken) of each tools/call sent one after another on one connection."""
    body, good = gateway_calls.METHODS["tools/call"]
    host, port = server.url.split("/")[2].split(":")
    path = "/" + server.url.split("/", 3)[3]
    headers = dict(gateway_calls.HEADERS)
    if server.token:
        headers["Authorization"] = f"Bearer {server.token}"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
        + body
    ).encode()
    times: list[tuple[float, float]] = []
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        end = time.perf_counter() + seconds
        while (started := time.perf_counter()) < end:
            sock.sendall(request)
            while True:
                head_end = pending.find(b"\r\n\r\n")
                if head_end >= 0:
                    head = pending[:head_end].lower()
                    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(pending) >= head_end + 4 + length:
                        answer = pending[head_end + 4 : head_end + 4 + length]
                        pending = pending[head_end + 4 + length :]
                        break
                chunk = sock.recv(65536)
                if not chunk:
                    raise SystemExit(f"{server.url}: connection closed")
                pending += chunk
            if not head.startswith(b"http/1.1 200") or good.encode() not in answer:
                raise SystemExit(f"{server.url}: unexpected answer {head[:40]!r}")
            times.append((started, time.perf_counter() - started))
    return times


def report(name: str, times: list[tuple[float, float]], slow_ms: float) -> str:
    taken = sorted(t for _, t in times)
    n = len(taken)

    def at(fraction: float) -> str:
        return f"{1e3 * taken[min(n - 1, int(fraction * n))]:.2f}"

    slow = [(start, t) for start, t in times if t * 1e3 > slow_ms]
    first = slow[0][0] if slow else 0.0
    where = ", ".join(f"{1e3 * (s - first):.0f} ms: {1e3 * t:.2f}" for s, t in slow[:12])
    return (
        f"| {name} | {n} | {at(0.5)} | {at(0.9)} | {at(0.99)} | {at(0.999)} | "
        f"{1e3 * taken[-1]:.1f} | {len(slow)} ({100 * len(slow) / n:.1f} %) | {where} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--slow", type=float, default=1.1, help="slow: over this many ms")
    parser.add_argument("--database-url", default="", help="also the gateway on PostgreSQL")
    parser.add_argument("--before", type=Path, help="also the gateway from this other checkout")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # the client on core 1, the servers on core 0
    workdir = Path(tempfile.mkdtemp(prefix="request-latency-"))
    python = sys.executable
    servers = [gateway_calls.bare(workdir, python, "auto")]
    try:
        for database_url in ["", args.database_url] if args.database_url else [""]:
            if args.before:
                root = args.before.resolve()
                servers.append(
                    gateway_calls.gateway(workdir, python, "auto", database_url, root=root)
                )
            servers.append(gateway_calls.gateway(workdir, python, "auto", database_url))
        print(
            f"tools/call, one connection, {args.seconds:g} s per row; each request timed by the "
            f"client (no coordinated-omission correction); slow: over {args.slow:g} ms"
        )
        print("| server | requests | p50 ms | p90 | p99 | p99.9 | max | slow | first slow ones |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |", flush=True)
        for server in servers:
            timed_requests(server, 2)  # warm up
        for round_ in range(args.rounds):
            for server in gateway_calls.in_order(servers, reverse=round_ % 2 == 1):
                print(report(server.name, timed_requests(server, args.seconds), args.slow))
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
