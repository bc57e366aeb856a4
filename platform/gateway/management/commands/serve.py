"""``manage.py serve``: migrate, then run web (uvicorn), a Celery worker and beat together.

The embedded default needs no services: SQLite under ./var and a broker in ./var/broker.
Ctrl-C (SIGINT) or SIGTERM stops the children and then the web server.
"""

import os
import signal
import subprocess
import sys
from urllib.parse import urlsplit

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the platform: migrate, then web + MCP, a Celery worker and beat in one command."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, help="port (default: PUBLIC_URL's port)")
        parser.add_argument("--no-worker", action="store_true", help="web only")

    def handle(self, *args, host, port, no_worker, **options):
        public = urlsplit(settings.PUBLIC_URL)
        port = port or public.port or (443 if public.scheme == "https" else 80)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        children = [] if no_worker else self._start_celery()
        self.stdout.write(f"Platform on {settings.PUBLIC_URL} (listening on {host}:{port})")
        self.stdout.write(f"Admin: {settings.PUBLIC_URL}/admin/")
        self.stdout.flush()
        try:
            uvicorn.run(
                "config.asgi:application",
                host=host,
                port=port,
                proxy_headers=True,
                log_level="warning",
                lifespan="on",
            )
        finally:
            for child in children:
                child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
            self.stdout.write("Stopped.")

    def _start_celery(self) -> list[subprocess.Popen]:
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        # Own process group: the terminal's Ctrl-C reaches uvicorn, which then stops these;
        # and should serve die without that chance, Linux ends them with it.
        common = {"env": env, "start_new_session": True, "preexec_fn": _die_with_parent}
        worker = subprocess.Popen(
            [
                *celery,
                "worker",
                "--loglevel=WARNING",
                "--pool=threads",
                "--concurrency=4",
                "--without-gossip",
                "--without-mingle",
            ],
            **common,
        )
        beat = subprocess.Popen([*celery, "beat", "--loglevel=WARNING"], **common)
        return [worker, beat]


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
