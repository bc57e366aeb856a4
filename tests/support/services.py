"""Private PostgreSQL and Redis servers that a test may stop and start (the shared ones on the
default ports must never be stopped).

    with PrivatePostgres() as postgres, PrivateRedis() as redis_server:
        postgres.url, redis_server.url(0)
        postgres.stop(); postgres.start()      # same port, same data

PostgreSQL is initialised (``initdb``) into a temporary folder on a free port, trusting local
connections; as root it runs as the ``postgres`` user, since PostgreSQL refuses to run as root.
Both are skipped (pytest.skip) when the servers' programs are not installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.live import free_port


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = _postgres_bin()
        if self.bin is None:
            pytest.skip("needs PostgreSQL's server programs (initdb, pg_ctl)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="private-postgres-"))
        self.data = self.dir / "data"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self._user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("PostgreSQL cannot run as root and there is no postgres user")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*self._user, *argv], capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stdout}\n{result.stderr}")

    def init(self) -> PrivatePostgres:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown, as a restart does: every session is ended at once."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def __enter__(self) -> PrivatePostgres:
        self.init().start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    def __init__(self) -> None:
        self.program = shutil.which("redis-server")
        if self.program is None:
            pytest.skip("needs redis-server")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="private-redis-"))
        self.pidfile = self.dir / "redis.pid"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        subprocess.run(
            [
                self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "yes", "--pidfile", str(self.pidfile),
                "--dir", str(self.dir),
            ],
            check=True,
        )  # fmt: skip
        import redis

        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis.from_url(self.url()).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server this object started (by its pid) and wait until it is gone."""
        pid = int(self.pidfile.read_text())
        os.kill(pid, 15)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.pidfile.exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
