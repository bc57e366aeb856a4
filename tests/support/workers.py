"""Real Celery worker processes for tests, on the test database and a private queue."""

import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


@contextmanager
def celery_workers(count: int, env: dict[str, str], concurrency: int = 2, queue: str = ""):
    """Start ``count`` workers consuming a queue of their own (``queue``, to start workers on
    the queue of earlier ones); tasks sent by this process go there while the context is open.
    Yields the worker processes."""
    queue = queue or f"test-{uuid.uuid4().hex[:8]}"
    worker_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "DATABASE_URL": test_database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "UPSTREAM_ENCRYPTION_KEYS": ",".join(settings.UPSTREAM_ENCRYPTION_KEYS),
        "PUBLIC_URL": settings.PUBLIC_URL,
        **env,
    }
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    workers = []
    try:
        for number in range(count):
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--loglevel=INFO",
                    "--pool=threads",
                    f"--concurrency={concurrency}",
                    "-Q",
                    queue,
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-n",
                    f"w{number}-{queue}@%h",
                ],
                env=worker_env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            workers.append(process)
        for process in workers:
            _wait_ready(process)
        yield workers
    finally:
        celery_app.conf.task_default_queue = previous_queue
        for process in workers:
            if process.poll() is None:
                process.terminate()
        for process in workers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(process: subprocess.Popen, timeout: float = 60) -> None:
    ready = threading.Event()
    lines: list[str] = []

    def read():
        for line in process.stdout:
            lines.append(line)
            if " ready." in line:
                ready.set()
        # keep draining so the worker never blocks on a full pipe

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("celery worker did not start:\n" + "".join(lines[-40:]))
