"""Benchmark: background refresh throughput of the sweep and Celery workers.

For N due connections (every one needs a refresh) against the Intuit emulator with injected
latency on its token endpoint, at several worker concurrencies: refreshes per second, the time
of one full sweep (claiming and publishing every due connection), and database queries per
refresh. Each row's anchors: the latency bound (with the token endpoint answering after L
seconds, C worker threads can do at most C / L refreshes per second; issue 17 asks for >= 80 %
of it) and the sweep goal (5 s per 10,000 due connections).

    uv run python bench/refresh_throughput.py --connections 1000 10000 --concurrency 1 4 16

The sweep publishes as in production: a few due connections per message
(UPSTREAM_REFRESH_BATCH), each message refreshed in turn by one worker thread. `--batch 1 8`
adds rows with one connection per message (Celery's cost paid per refresh) as the anchor.
The worker runs as docker-compose.yml runs it: threads, one pooled database connection per
thread (DB_POOL_SIZE, unless set).

Uses DATABASE_URL / REDIS_URL when set (PostgreSQL and Redis: the production shape), else a
SQLite file and the file broker in a temporary folder. Writes nothing outside that folder
(and its own queues, purged and deleted after each run, in the broker).

Three processes take part, as in production: this one (the sweep, as beat would run it, and
the bookkeeping), the Celery worker, and the emulator (its own uvicorn process, steered over
its /_emulator control endpoints; in this process it would share the GIL with the sweep and
the polling). "all refreshed" is measured from the sweep's start to the newest
last_refresh_at the worker wrote, so the polling interval does not count; the worker is
started and answering a ping before the clock starts.

The CPU columns say where the machine's two cores went during the run, in milliseconds per
refresh: the worker process (and its children), PostgreSQL (all its processes, including
backends that exited), Redis, the emulator, this process (the sweep), and `other`, which is load
that is not part of the benchmark: a run with other load above a few percent was disturbed.
"machine busy" is the share of all cores in use during the run: near 100% the machine, not the
worker's concurrency, is the limit.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402
from intuit_emulator import CLIENT_ID, CLIENT_SECRET, Emulator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]


# Issue 17: a sweep of 10,000 due connections (claim and publish) in at most 5 s; the goal
# column scales it to the row's count.
SWEEP_GOAL_SECONDS = 5.0


def setup(workdir: Path) -> None:
    os.environ.setdefault("VAR_DIR", str(workdir))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=None,
        help="connections per refresh message (UPSTREAM_REFRESH_BATCH), one row each; "
        "1 is one message per refresh",
    )
    parser.add_argument("--latency", type=float, default=0.05, help="token endpoint delay (s)")
    parser.add_argument(
        "--pool",
        default="threads",
        choices=["threads", "prefork"],
        help="Celery worker pool (prefork: one process per concurrency slot)",
    )
    parser.add_argument(
        "--db-reuse",
        action="store_true",
        help="experiment: the worker keeps its database connections between tasks "
        "(bench/celery_db_reuse.py) instead of Celery's default reconnect per task",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="refresh-bench-"))
    setup(workdir)

    from django.conf import settings

    emulator = Emulator()
    emulator.unthrottled()
    settings.QUICKBOOKS_ENVIRONMENT = emulator.url
    settings.QUICKBOOKS_CLIENT_ID = CLIENT_ID
    settings.QUICKBOOKS_CLIENT_SECRET = CLIENT_SECRET
    db = settings.DATABASES["default"]
    pooled = bool(db.get("OPTIONS", {}).get("pool"))
    print(
        f"database: {db['ENGINE'].rsplit('.', 1)[-1]}, broker: "
        f"{'redis' if settings.REDIS_URL else 'filesystem'}, latency "
        f"{args.latency * 1000:.0f} ms, pool: {args.pool}, emulator in its own process, "
        "worker database connections: "
        f"{'kept' if args.db_reuse else 'pooled' if pooled else 'new per task'}, "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    print(
        "| connections | concurrency | ids per message | refreshes/s | latency bound /s "
        "| % of bound | full sweep (s) | sweep goal (s) | all refreshed (s) "
        "| queries/refresh | CPU ms/refresh: worker | PostgreSQL | Redis | emulator | sweep "
        "| machine busy (%) | other load (%) | load avg |"
    )
    print(
        "|" + " ---: |" * 18,
        flush=True,
    )
    try:
        for count in args.connections:
            connector_id, ids = make_connections(emulator, count)
            per_refresh = queries_per_refresh(ids[:50])
            emulator.slow_token_endpoint(args.latency)
            for concurrency, batch in [
                (c, b)
                for c in args.concurrency
                for b in args.batch or [settings.UPSTREAM_REFRESH_BATCH]
            ]:
                settings.UPSTREAM_REFRESH_BATCH = batch  # the sweep runs in this process
                make_due(ids)
                sweep_seconds, total_seconds, cpu = run(
                    connector_id, ids, concurrency, args.pool, emulator, workdir, args.db_reuse
                )
                ms = {name: seconds * 1000 / count for name, seconds in cpu.items()}
                capacity = cpu["window"] * (os.cpu_count() or 1)
                busy, other = 100 * cpu["busy"] / capacity, 100 * cpu["other"] / capacity
                rate, bound = count / total_seconds, concurrency / args.latency
                print(
                    f"| {count} | {concurrency} | {batch} | {rate:.1f} | {bound:.0f} "
                    f"| {100 * rate / bound:.0f} "
                    f"| {sweep_seconds:.2f} | {SWEEP_GOAL_SECONDS * count / 10000:.1f} "
                    f"| {total_seconds:.1f} | {per_refresh:.1f} "
                    f"| {ms['worker']:.1f} | {ms['postgres']:.1f} | {ms['redis']:.1f} "
                    f"| {ms['emulator']:.1f} "
                    f"| {ms['sweep']:.1f} | {busy:.0f} | {other:.0f} | {os.getloadavg()[0]:.1f} |",
                    flush=True,
                )
            emulator.clear_faults()
    finally:
        emulator.stop()


def make_connections(emulator: Emulator, count: int) -> tuple[int, list[int]]:
    from django.contrib.auth import get_user_model

    from connectors.base import UpstreamTokens
    from tenants.models import Connector, Tenant
    from tenants.services import connector_create, tenant_create
    from upstream import clock
    from upstream.models import UpstreamConnection
    from upstream.services import token_fields

    UpstreamConnection.objects.all().delete()
    Connector.objects.all().delete()
    get_user_model().objects.filter(username__startswith="bench-").delete()
    Tenant.objects.filter(slug="bench").delete()
    tenant = tenant_create(slug="bench", name="Bench")
    connector = connector_create(tenant=tenant, kind="quickbooks", slug="qbo")
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench-{n}") for n in range(count)]
    )
    rows = []
    for user in users:
        issued = emulator.issue_tokens()
        tokens = UpstreamTokens(
            access_token=issued["access_token"],
            refresh_token=issued["refresh_token"],
            expires_in=issued["expires_in"],
            external_account_id=issued["realmId"],
        )
        rows.append(
            UpstreamConnection(
                connector=connector,
                user=user,
                provider="quickbooks",
                external_account_id=issued["realmId"],
                last_refresh_at=clock.now(),
                **token_fields(tokens, clock.now()),
            )
        )
    UpstreamConnection.objects.bulk_create(rows, batch_size=1000)
    ids = list(UpstreamConnection.objects.order_by("pk").values_list("pk", flat=True))
    return connector.pk, ids


def make_due(ids: list[int]) -> None:
    """Every connection a day and a half unrefreshed: the sweep must refresh them all."""
    from django.db import connection

    from events.models import Event
    from upstream import clock
    from upstream.models import UpstreamConnection

    UpstreamConnection.objects.filter(pk__in=ids).update(
        last_refresh_at=clock.now() - timedelta(hours=36),
        refresh_queued_until=None,
        status="active",
        lease_owner="",
        lease_until=None,
    )
    if connection.vendor == "postgresql":
        # Each row starts on vacuumed tables, as autovacuum keeps them in production: every run
        # leaves a few dead versions of each row (the claims, the stores), and on a server with
        # autovacuum off, or slower than these runs, later rows would scan ever more of them.
        with connection.cursor() as cursor:
            for model in (UpstreamConnection, Event):
                cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def queries_per_refresh(ids: list[int]) -> float:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from upstream.refresh import upstream_connection_refresh

    make_due(ids)
    with CaptureQueriesContext(connection) as captured:
        for pk in ids:
            upstream_connection_refresh(connection_id=pk)
    return len(captured.captured_queries) / len(ids)


def run(
    connector_id: int,
    ids: list[int],
    concurrency: int,
    pool: str,
    emulator: Emulator,
    workdir: Path,
    db_reuse: bool = False,
) -> tuple[float, float, dict[str, float]]:
    from django.conf import settings
    from django.db.models import Max

    from config.celery import app
    from upstream.models import UpstreamConnection
    from upstream.tasks import upstream_sweep

    queue = f"bench-{pool}-{concurrency}-{len(ids)}-{os.getpid()}"
    node = f"{queue}@bench"
    app.conf.task_default_queue = queue
    env = {
        **os.environ,
        # This tree's code first, whatever the current directory (Celery puts it on sys.path).
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "platform"), str(ROOT), str(Path(__file__).resolve().parent), *sys.path]
        ),
        "VAR_DIR": str(workdir),
        "QUICKBOOKS_ENVIRONMENT": emulator.url,
        "QUICKBOOKS_CLIENT_ID": CLIENT_ID,
        "QUICKBOOKS_CLIENT_SECRET": CLIENT_SECRET,
        "UPSTREAM_ENCRYPTION_KEYS": ",".join(settings.UPSTREAM_ENCRYPTION_KEYS),
        # As docker-compose.yml runs it: one pooled database connection per worker thread.
        "DB_POOL_SIZE": os.environ.get("DB_POOL_SIZE") or str(concurrency),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_db_reuse" if db_reuse else "config",
            "worker",
            "--loglevel=WARNING",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "-Q",
            queue,
            "-n",
            node,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(app, node, worker)  # worker start-up is not part of the measurement
        pending = UpstreamConnection.objects.filter(
            connector_id=connector_id, last_refresh_at__lt=_cutoff()
        )
        before, window = procstat.Snapshot.take(), time.monotonic()
        started_wall = time.time()
        started = time.monotonic()
        while upstream_sweep():  # beat would run these a minute apart; here back to back
            pass
        sweep_seconds = time.monotonic() - started
        while pending.exists():
            time.sleep(0.5)
            if time.monotonic() - started > 3600:
                raise SystemExit("refreshes did not finish within an hour")
        after, window = procstat.Snapshot.take(), time.monotonic() - window
        newest = UpstreamConnection.objects.filter(connector_id=connector_id).aggregate(
            newest=Max("last_refresh_at")
        )["newest"]
        total = newest.timestamp() - started_wall
        cpu = procstat.cpu_by_group(
            before,
            after,
            {
                "worker": procstat.by_pids(procstat.descendants(after, worker.pid)),
                "emulator": procstat.by_pids({emulator.process.pid}),
                "sweep": procstat.by_pids({os.getpid()}),
                "postgres": procstat.by_comm("postgres"),
                "redis": procstat.by_comm("redis-server"),
            },
        )
        cpu["window"] = window
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        drop_queue(app, queue)
    return sweep_seconds, total, cpu


def drop_queue(app, queue: str) -> None:
    """Purge and delete the run's queue; on Redis also the binding keys kombu leaves behind."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_purge(queue)
        channel.queue_delete(queue)
        client = getattr(channel, "client", None)
        if client is not None and hasattr(client, "delete"):  # the Redis transport
            client.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")


def wait_ready(app, node: str, worker: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit("the worker exited at start-up")
        if app.control.ping(destination=[node], timeout=1.0):
            return
    raise SystemExit("the worker did not answer a ping within two minutes")


def _cutoff():
    from upstream import clock

    return clock.now() - timedelta(hours=1)


if __name__ == "__main__":
    main()
