"""Benchmark: what the bearer lease costs a change (gateway.bearer, migration 0002).

A transaction that changes what a bearer check reads commits only once every web process
holding the lease let go of it. This times such commits (an update of a tenant's ``enabled``,
one transaction each, from this process) with no lease held (the anchor), then with one event
loop in this process holding it as a web process does, one change after another and from
several threads at once. PostgreSQL only (SQLite has no lease).

    uv run python bench/lease_writer_wait.py --database-url postgres://.../bench
"""

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT / "platform"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _commits(tenant_id: int, count: int, threads: int) -> list[float]:
    """Milliseconds per commit of ``count`` changes, from ``threads`` threads at once."""
    from django.db import connection

    from tenants.models import Tenant

    def change(i: int) -> float:
        started = time.perf_counter()
        Tenant.objects.filter(pk=tenant_id).update(enabled=bool(i % 2))  # a column checks read
        elapsed = (time.perf_counter() - started) * 1000
        if threads > 1:
            connection.close()
        return elapsed

    if threads == 1:
        return [change(i) for i in range(count)]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(change, range(count)))


class _Holder:
    """An event loop in a thread holding the lease, as a web process under traffic does."""

    def __init__(self) -> None:
        from gateway.bearer import BearerChecks

        self.checks = BearerChecks()
        self.held = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self) -> None:
        await self.checks.open()
        while not self._stop.is_set():
            await self.checks("lease-bench", "none", None)  # a check: the lease is in use
            if self.checks._lease is not None:
                self.held.set()
            await asyncio.sleep(0.01)
        self.checks.close()

    def __enter__(self):
        self._thread.start()
        if not self.held.wait(10):
            raise SystemExit("the lease was not taken")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database")
    parser.add_argument("--count", type=int, default=200, help="changes per row")
    args = parser.parse_args()
    _setup(args.database_url)
    from gateway import bearer
    from tenants.models import Tenant

    Tenant.objects.filter(slug="lease-bench").delete()
    tenant = Tenant.objects.create(slug="lease-bench", name="lease-bench")
    print(
        f"load average {os.getloadavg()[0]:.2f}; lease renewed every "
        f"{bearer.LEASE_RENEW_SECONDS * 1000:.0f} ms, every "
        f"{bearer.LEASE_BUSY_RENEW_SECONDS * 1000:.0f} ms while changes come"
    )
    print("| lease | writers | changes | p50 ms | p90 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    try:
        for threads in (1, 8):
            rows = [("none held", _commits(tenant.pk, args.count, threads))]
            with _Holder():
                rows.append(("held by one loop", _commits(tenant.pk, args.count, threads)))
            for label, times in rows:
                times.sort()
                print(
                    f"| {label} | {threads} | {len(times)} | {statistics.median(times):.1f} | "
                    f"{times[int(len(times) * 0.9)]:.1f} | {times[-1]:.1f} |"
                )
    finally:
        Tenant.objects.filter(pk=tenant.pk).delete()


if __name__ == "__main__":
    main()
