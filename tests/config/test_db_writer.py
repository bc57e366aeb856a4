"""The web process's writer thread (config.db.db_writer_executor): the audit flush and the call
counts, on SQLite at a lower priority than the event loop's thread."""

import os
import sys
import threading

import pytest
from django.db import connection

from config.db import WRITER_NICE, db_writer_executor


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own priority: Linux")
def test_the_writer_thread_alone_runs_at_a_lower_priority_on_sqlite():
    def priority() -> tuple[int, int]:
        return threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0)

    before = os.getpriority(os.PRIO_PROCESS, 0)
    tid, nice = db_writer_executor().submit(priority).result()
    assert tid != threading.get_native_id()
    lowered = min(19, before + WRITER_NICE) if connection.vendor == "sqlite" else before
    assert nice == lowered
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # this thread (and process): unchanged
