"""The environment of a fresh platform process on the embedded default, for tests that start one
to see what it loads or does: no Redis, no PostgreSQL, no OTLP exporter, its own VAR_DIR, and
this test run's import path."""

import os
import sys
from pathlib import Path

_SERVICES = ("REDIS_URL", "CACHE_REDIS_URL", "DATABASE_URL")


def embedded_process_env(var_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _SERVICES and not k.startswith("OTEL_EXPORTER_OTLP")
    }
    return env | {"VAR_DIR": str(var_dir), "PYTHONPATH": os.pathsep.join(sys.path)}
