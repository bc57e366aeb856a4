"""Benchmark: what the sweep pays per enqueued refresh, per message and batched.

Publishes `upstream_refresh` messages to a queue of its own (nobody consumes it; purged and
deleted at the end) three ways: `.delay()` per id (the anchor: what `upstream_sweep` did
before), through one producer, and through one producer inside kombu's `producer.batch()`
(kombu >= 5.7, Redis transport: pipelined LPUSHes), which `upstream_sweep` does now. Needs
REDIS_URL (e.g. redis://127.0.0.1:6379/2).

    REDIS_URL=redis://127.0.0.1:6379/2 uv run python bench/sweep_publish.py --messages 1000
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("set REDIS_URL (a Redis database for benchmarks)")
    os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="sweep-publish-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from config.celery import app
    from upstream.tasks import upstream_refresh

    queue = f"bench-publish-{os.getpid()}"
    app.conf.task_default_queue = queue
    n = args.messages

    def per_delay():
        for pk in range(n):
            upstream_refresh.delay(pk)

    def one_producer():
        with app.producer_or_acquire() as producer:
            for pk in range(n):
                upstream_refresh.apply_async((pk,), producer=producer)

    def batched():
        with app.producer_or_acquire() as producer, producer.batch():
            for pk in range(n):
                upstream_refresh.apply_async((pk,), producer=producer)

    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| how | wall ms/message | CPU ms/message |")
    print("| --- | ---: | ---: |")
    try:
        for _ in range(50):
            upstream_refresh.delay(0)  # connections and declarations made before timing
        for name, publish in (
            (".delay() per id (the sweep before)", per_delay),
            ("one producer", one_producer),
            ("one producer, producer.batch() (the sweep now)", batched),
        ):
            wall, cpu = time.perf_counter(), time.process_time()
            publish()
            wall = (time.perf_counter() - wall) * 1000 / n
            cpu = (time.process_time() - cpu) * 1000 / n
            print(f"| {name} | {wall:.2f} | {cpu:.2f} |", flush=True)
    finally:
        drop_queue(app, queue)


def drop_queue(app, queue: str) -> None:
    """Purge and delete the run's queue; on Redis also the binding keys kombu leaves behind."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_purge(queue)
        channel.queue_delete(queue)
        client = getattr(channel, "client", None)
        if client is not None and hasattr(client, "delete"):  # the Redis transport
            client.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")


if __name__ == "__main__":
    main()
