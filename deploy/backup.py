"""Back up, check and restore a compose deployment's database (run on the host, from the checkout).

    python3 deploy/backup.py backup [--dir backups]   # dump + .env copy + Caddy's data, checked
    python3 deploy/backup.py check DUMP                # restore into a scratch database and let
                                                       # the platform read it with .env's keys
    python3 deploy/backup.py restore DUMP              # replace the database with DUMP

A backup is the database dump (custom format: it holds live MCP tokens and the encrypted
upstream tokens: keep it like a password) and a copy of the whole `.env` (SECRET_KEY and
UPSTREAM_ENCRYPTION_KEYS: the dump's upstream tokens are readable only with the keys it was
made under), and Caddy's certificates. `backup` checks its dump at once: restored into a
scratch database, the platform's start-up checks must read every stored upstream token.

pg_dump, pg_restore and createdb run inside the postgres container (`docker compose exec`), so
their version is the server's; manage.py runs in a one-off migrate container. `--local` runs
the same commands on this machine instead, against DATABASE_URL (CI, which has no Docker).
Only the bundled PostgreSQL: with a managed database, use your provider's backups.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = ("web", "worker", "beat")


class Runner:
    """Where the commands run: the compose containers, or this machine (--local)."""

    def __init__(self, local: bool, env_file: Path):
        self.local = local
        self.env_file = env_file
        # The deployment's database, and the scratch one a check restores into.
        self.database = urlsplit(os.environ["DATABASE_URL"]).path[1:] if local else "platform"
        self.scratch = f"{self.database}_restore_check"

    def url(self, database: str) -> str:
        if self.local:
            base = urlsplit(os.environ["DATABASE_URL"])
            return urlunsplit(base._replace(path=f"/{database}"))
        return f"postgresql:///{database}?user=platform"  # the container's socket

    def postgres(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """A PostgreSQL client command (stdin and stdout pass through, for dumps)."""
        prefix = [] if self.local else ["docker", "compose", "exec", "-T", "postgres"]
        return subprocess.run([*prefix, *argv], check=True, **kwargs)

    def manage(self, database: str, *arguments: str) -> subprocess.CompletedProcess:
        """``manage.py`` with the deployment's settings, on ``database``."""
        if self.local:
            env = {**os.environ, "DATABASE_URL": self.url(database)}
            argv = [sys.executable, str(ROOT / "manage.py"), *arguments]
            return subprocess.run(argv, env=env, cwd=ROOT, check=False)
        password = dotenv(self.env_file).get("POSTGRES_PASSWORD", "")
        url = f"postgres://platform:{password}@postgres:5432/{database}"
        argv = ["docker", "compose", "run", "--rm", "--no-deps", "-e", f"DATABASE_URL={url}"]
        return subprocess.run([*argv, "migrate", "python", "manage.py", *arguments], check=False)

    def compose(self, *arguments: str) -> None:
        if not self.local:
            subprocess.run(["docker", "compose", *arguments], check=True)


def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def backup(runner: Runner, folder: Path) -> Path:
    """Dump the database, copy .env and Caddy's data into a new folder; check the dump."""
    now = datetime.now(timezone.utc)  # noqa: UP017 (datetime.UTC: not on Python 3.10 hosts)
    target = folder / now.strftime("%Y%m%dT%H%M%SZ")
    target.mkdir(parents=True, mode=0o700)
    dump = target / "platform.dump"
    with dump.open("wb") as out:
        dbname = f"--dbname={runner.url(runner.database)}"
        runner.postgres(["pg_dump", "--format=custom", dbname], stdout=out)
    dump.chmod(0o600)
    shutil.copyfile(runner.env_file, target / "env")
    (target / "env").chmod(0o600)
    if not runner.local:
        # Certificates and the ACME account: without them a restored host asks for new ones
        # (and may hit the certificate authority's rate limits).
        copy = ["docker", "compose", "cp", "caddy:/data", str(target / "caddy-data")]
        copied = subprocess.run(copy)
        if copied.returncode:
            print("no Caddy data copied (the tls profile is not running)", file=sys.stderr)
    check(runner, dump)
    print(target)
    return target


def check(runner: Runner, dump: Path) -> None:
    """Restore ``dump`` into a scratch database and run the platform's start-up checks on it
    (every stored upstream token must decrypt with the keys in .env); drop it after."""
    maintenance = f"--maintenance-db={runner.url('postgres')}"
    runner.postgres(["dropdb", "--if-exists", "--force", maintenance, runner.scratch])
    runner.postgres(["createdb", maintenance, runner.scratch])
    try:
        restore_into(runner, dump, runner.scratch)
        if runner.manage(runner.scratch, "check", "--database", "default").returncode:
            raise SystemExit(f"{dump}: restored, but the platform cannot use it (see above)")
    finally:
        runner.postgres(["dropdb", "--if-exists", "--force", maintenance, runner.scratch])
    print(f"{dump}: restores, and every stored upstream token decrypts with the current keys")


def restore_into(runner: Runner, dump: Path, database: str) -> None:
    with dump.open("rb") as source:
        runner.postgres(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--exit-on-error",
                f"--dbname={runner.url(database)}",
            ],
            stdin=source,
        )


def restore(runner: Runner, dump: Path) -> None:
    """Replace the deployment's database with ``dump``, with the platform stopped; then start it
    (migrate first: it runs the start-up checks, which refuse keys that cannot read the dump)."""
    runner.compose("stop", *APP_SERVICES)
    restore_into(runner, dump, runner.database)
    if runner.local:
        if runner.manage(runner.database, "migrate", "--noinput").returncode:
            raise SystemExit("restored, but migrate refused to run (see above)")
    else:
        runner.compose("up", "-d")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="run here, against DATABASE_URL")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backup").add_argument("--dir", type=Path, default=ROOT / "backups")
    commands.add_parser("check").add_argument("dump", type=Path)
    commands.add_parser("restore").add_argument("dump", type=Path)
    args = parser.parse_args()
    runner = Runner(args.local, args.env_file)
    if args.command == "backup":
        backup(runner, args.dir)
    elif args.command == "check":
        check(runner, args.dump)
    else:
        restore(runner, args.dump)


if __name__ == "__main__":
    main()
