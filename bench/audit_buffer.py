"""Benchmark: what one audit record costs while it waits in the web process's buffer
(events.audit.audit_buffer), and the CPU of making it on a tools/call's path.

A record waits in the buffer until the next flush (AUDIT_FLUSH_SECONDS, or a full batch): a flush
held up (a slow disk, a locked database) while calls keep coming leaves every record of that
time there, and the memory they held stays with the allocator once they are written
(bench/web_memory.py). Each checkout (``--before``: another one, e.g. a worktree of main before
a change, run with this checkout's packages; then this one) makes records as
gateway.asgi's ``_audit`` makes them (a new time and arguments digest per call, the same
member, client and connector) in a fresh process on the embedded default, and adds
``--records`` of them to the buffer without writing them:

- bytes held per record: tracemalloc's traced memory, and the process's RSS (a second fresh
  process, without tracemalloc), before and after adding them, divided by their number;
- CPU per record: ``audit_record_new`` alone with the same values, then with ``add``; the best
  of five runs of ``--calls`` each (microseconds).

The rows alternate between the checkouts, ``--rounds`` times, so both are measured under the
same machine load.

    uv run python bench/audit_buffer.py --before <checkout of main> --rounds 3
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import gc, json, sys, timeit, tracemalloc
from datetime import timedelta
from pathlib import Path

import django

django.setup()
from django.utils import timezone

from events.audit import audit_arguments, audit_buffer, audit_record_new

mode, count = sys.argv[1], int(sys.argv[2])
MEMBER, CLIENT = "bench-member", "0f9c2a3e-5d1b-4c7e-9a8f-1b2c3d4e5f60"


def rss_bytes():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024


def record(i):
    latency = 0.0021
    tool = b"echo".decode()  # a new string per call, as parsed from the request
    kept, arguments = audit_arguments({"text": f"hello {i}"}, read_only=True, mode="digest")
    return audit_record_new(
        created=timezone.now() - timedelta(seconds=latency),
        tenant_id=1,
        connector_id=2,
        user_id=3,
        username=MEMBER,
        client_id=CLIENT,
        tool=tool,
        outcome="ok",
        latency_ms=int(latency * 1000),
        upstream_request_id="",
        arguments_kept=kept,
        arguments=arguments,
        error="",
    )


def buffered(count):
    for i in range(count):
        audit_buffer.add(record(i))
    gc.collect()


buffered(100)  # first use: whatever loads or caches then is not a record's
audit_buffer.drain()
gc.collect()
if mode == "traced":
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    buffered(count)
    answer = {"traced": (tracemalloc.get_traced_memory()[0] - start) / count}
elif mode == "rss":
    start = rss_bytes()
    buffered(count)
    answer = {"rss": (rss_bytes() - start) / count}
else:
    fields = dict(
        created=timezone.now(), tenant_id=1, connector_id=2, user_id=3, username=MEMBER,
        client_id=CLIENT, tool="echo", outcome="ok", latency_ms=2, upstream_request_id="",
        arguments_kept="digest", arguments={"keys": ["text"], "sha256": "0" * 64}, error="",
    )

    def make_and_add():
        audit_buffer.add(audit_record_new(**fields))

    make = min(timeit.repeat(lambda: audit_record_new(**fields), number=count, repeat=5))
    added = []
    for _ in range(5):
        added.append(timeit.timeit(make_and_add, number=count))
        audit_buffer.drain()
        gc.collect()
    answer = {"make": make / count * 1e6, "make_add": min(added) / count * 1e6}
print(json.dumps(answer))
"""


def measure(root: Path, mode: str, count: int, var_dir: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL")
    }
    env |= {
        "VAR_DIR": var_dir,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONPATH": os.pathsep.join([str(root / "platform"), str(root)]),
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(count)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"{root.name} ({mode}) failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000, help="records buffered")
    parser.add_argument("--calls", type=int, default=100_000, help="records made per CPU run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--before", type=Path, help="another checkout, measured first")
    args = parser.parse_args()
    trees = [("before", args.before.resolve())] if args.before else []
    trees.append(("this checkout", ROOT))
    print(
        f"{args.records:,} records buffered (not written) per memory row, "
        f"{args.calls:,} made per CPU run (best of five)"
    )
    print(
        "| tree | traced bytes / record | RSS bytes / record | audit_record_new, us "
        "| and add, us | load avg |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="audit-buffer-bench-") as var_dir:
        for _ in range(args.rounds):
            for name, root in trees:
                answer = (
                    measure(root, "traced", args.records, var_dir)
                    | measure(root, "rss", args.records, var_dir)
                    | measure(root, "cpu", args.calls, var_dir)
                )
                print(
                    f"| {name} | {answer['traced']:.0f} | {answer['rss']:.0f} "
                    f"| {answer['make']:.2f} | {answer['make_add']:.2f} "
                    f"| {os.getloadavg()[0]:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
