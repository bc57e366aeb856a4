"""The platform's ASGI application with every SQL statement counted, for benchmarks only.

    uvicorn sql_counting:application      (bench/ on PYTHONPATH, BENCH_SQL_COUNTS=<file>)

Every statement any thread runs goes through Django's CursorWrapper._execute_with_wrappers, but
the gateway's bearer check, which runs on the event loop's own connection
(gateway.bearer.BearerChecks._loop_rows on SQLite, _loop_postgres_rows on PostgreSQL, counted
once answered there); the test suite counts the same ways (tests/support/sql.py). This
counts them by verb, and writes by their first words (``INSERT INTO "events_auditrecord"``).
On SIGUSR1 the counts so far are written to the file named by BENCH_SQL_COUNTS (replaced
whole). The platform's own code has no counter: this costs one Python call and a lock per
statement, about a microsecond, in the benchmark's server only.
"""

import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path

from django.db.backends.utils import CursorWrapper

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COPY")
_counts: Counter[str] = Counter()
_lock = threading.Lock()
_original = CursorWrapper._execute_with_wrappers


def _counting(self, sql, params, many, executor):
    words = str(sql).split(None, 3)
    verb = words[0].upper() if words else ""
    with _lock:
        _counts["statements"] += 1
        if verb in WRITES:  # "INSERT INTO table", "UPDATE table SET", "COPY table"
            _counts[" ".join(words[: 2 if verb == "COPY" else 3])] += 1
    return _original(self, sql, params, many, executor)


def _counting_loop(self, compiled, params):
    with _lock:
        _counts["statements"] += 1
    return _original_loop(self, compiled, params)


async def _counting_loop_postgres(self, compiled, params):
    rows = await _original_loop_postgres(self, compiled, params)
    if rows is not None:  # else Django's cursor runs it, and counts it
        with _lock:
            _counts["statements"] += 1
    return rows


def _dump(signum, frame) -> None:
    with _lock:
        counts = dict(_counts)
    path = Path(os.environ["BENCH_SQL_COUNTS"])
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(counts))
    partial.replace(path)


CursorWrapper._execute_with_wrappers = _counting
signal.signal(signal.SIGUSR1, _dump)

from config.asgi import application  # noqa: E402
from gateway.bearer import BearerChecks  # noqa: E402

_original_loop = BearerChecks._loop_rows
BearerChecks._loop_rows = _counting_loop
_original_loop_postgres = BearerChecks._loop_postgres_rows
BearerChecks._loop_postgres_rows = _counting_loop_postgres

__all__ = ["application"]
