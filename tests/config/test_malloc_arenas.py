"""The web process limits glibc's malloc arenas itself (config.asgi.malloc_arenas_limit), so that
``manage.py serve`` and a plain ``uvicorn`` run as the image does with MALLOC_ARENA_MAX=2: eight
threads that allocate at once share two arenas instead of taking one each (issue 17, goal 6:
bench/web_memory.py)."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's"
)

SCRIPT = """
import ctypes, os, sys, threading
if sys.argv[1] == "web":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import config.asgi  # what uvicorn and manage.py serve load
barrier = threading.Barrier(8)


def allocate():
    kept = [bytes(2000) for _ in range(100)]  # over 512 bytes: malloc's, not Python's own
    barrier.wait()  # all eight alive at once: none takes an arena another has left
    del kept


threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, out)
libc.fclose(out)
"""


def _arenas(tmp_path, how: str, **env: str) -> int:
    report = tmp_path / f"malloc-{how}.xml"
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    environment |= {
        "VAR_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(sys.path),
        **env,
    }
    environment.pop("DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "-c", SCRIPT, how, str(report)],
        env=environment,
        check=True,
        timeout=120,
    )
    return report.read_text().count("<heap nr=")


def test_the_web_process_shares_two_malloc_arenas_between_its_threads(tmp_path):
    assert _arenas(tmp_path, "bare") == 9  # the main arena and one per thread
    assert _arenas(tmp_path, "web") == 2


def test_a_malloc_arena_max_of_the_environment_wins(tmp_path):
    assert _arenas(tmp_path, "web", MALLOC_ARENA_MAX="4") == 4
