"""``manage.py serve``: the whole platform in one command.

Migrates, creates a demo tenant on first run, starts the QuickBooks emulator when no Intuit
credentials are configured (embedded default only), a Celery worker and beat, and serves web and
MCP with uvicorn. Ctrl-C (SIGINT) or SIGTERM stops the children, then the web server.
"""

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.env import kept_secret

EMULATOR_CLIENT_ID = "embedded-demo-client"


class Command(BaseCommand):
    help = "Run the platform: web + MCP, a Celery worker and beat (and the Intuit emulator)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, help="port (default: PUBLIC_URL's port)")
        parser.add_argument("--no-worker", action="store_true", help="web only")
        parser.add_argument("--no-demo", action="store_true", help="create no demo tenant")

    def handle(self, *args, host, port, no_worker, no_demo, **options):
        public = urlsplit(settings.PUBLIC_URL)
        port = port or public.port or (443 if public.scheme == "https" else 80)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        children: list[subprocess.Popen] = []
        child_env = {"PYTHONPATH": os.pathsep.join(sys.path)}
        try:
            if not settings.QUICKBOOKS_CLIENT_ID:
                emulator, env = self._start_emulator(port)
                children.append(emulator)
                child_env.update(env)
            if not no_worker:
                children += self._start_celery(child_env)
            demo = None if no_demo else self._demo()
            self._banner(host, port, demo)
            uvicorn.run(
                "config.asgi:application",
                host=host,
                port=port,
                proxy_headers=False,  # the platform reads them (FORWARDED_ALLOW_IPS)
                log_level="warning",
                log_config=None,  # uvicorn logs through Django's LOGGING: JSON lines
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

    def _start_emulator(self, port: int) -> tuple[subprocess.Popen, dict[str, str]]:
        """The local Intuit, for the embedded default only; never in production."""
        if not settings.EMBEDDED:
            raise CommandError(
                "QUICKBOOKS_CLIENT_ID is not set; in production configure a real Intuit app "
                "(the emulator only runs in the embedded default)"
            )
        emulator_port = port + 1
        base = f"http://127.0.0.1:{emulator_port}"
        secret = kept_secret(settings.VAR_DIR / "emulator_client_secret")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connectors.quickbooks.emulator",
                "--port",
                str(emulator_port),
                "--client-id",
                EMULATOR_CLIENT_ID,
                "--client-secret",
                secret,
                "--redirect-uri",
                f"{settings.PUBLIC_URL}/upstream/quickbooks/callback",
            ],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_child_options(),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/.well-known/openid_configuration", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise CommandError(f"the QuickBooks emulator did not start on {base}") from None
                time.sleep(0.1)
        env = {
            "QUICKBOOKS_ENVIRONMENT": base,
            "QUICKBOOKS_CLIENT_ID": EMULATOR_CLIENT_ID,
            "QUICKBOOKS_CLIENT_SECRET": secret,
        }
        # This process serves the web app: point it at the emulator too.
        settings.QUICKBOOKS_ENVIRONMENT = base
        settings.QUICKBOOKS_CLIENT_ID = EMULATOR_CLIENT_ID
        settings.QUICKBOOKS_CLIENT_SECRET = secret
        os.environ.update(env)
        return process, env

    def _start_celery(self, env: dict[str, str]) -> list[subprocess.Popen]:
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        options = {"env": {**os.environ, **env}, **_child_options()}
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
            **options,
        )
        beat = subprocess.Popen([*celery, "beat", "--loglevel=WARNING"], **options)
        return [worker, beat]

    def _demo(self) -> dict | None:
        """A demo tenant with a member and a QuickBooks connector, created once."""
        from django.contrib.auth import get_user_model

        from tenants.models import Connector, Tenant
        from tenants.services import connector_create, member_add, tenant_create

        password = kept_secret(settings.VAR_DIR / "demo_password", _readable_password)
        tenant = Tenant.objects.filter(slug="demo").first()
        if tenant is None:
            tenant = tenant_create(slug="demo", name="Demo Company")
            member_add(tenant=tenant, username="demo", password=password, role="admin")
            user = get_user_model().objects.get(username="demo")
            user.is_staff = user.is_superuser = True  # the demo user is also the operator
            user.save()
            connector_create(tenant=tenant, kind="quickbooks", slug="quickbooks")
        connector = Connector.objects.filter(tenant=tenant, kind="quickbooks").first()
        return {"username": "demo", "password": password, "connector": connector}

    def _banner(self, host: str, port: int, demo: dict | None) -> None:
        base = settings.PUBLIC_URL
        lines = [
            f"Platform on {base} (listening on {host}:{port})",
            f"  dashboard:  {base}/dashboard/    admin: {base}/admin/",
        ]
        if settings.QUICKBOOKS_ENVIRONMENT.startswith("http"):
            lines.append(f"  QuickBooks: emulator at {settings.QUICKBOOKS_ENVIRONMENT}")
        if demo:
            lines += [
                f"  sign in:    {demo['username']} / {demo['password']}",
            ]
            if demo["connector"] is not None:
                url = demo["connector"].url
                lines += [
                    f"  connector:  {url}",
                    "  add it to a client: Claude > Settings > Connectors > Add custom connector,"
                    f" URL {url};",
                    f"    Claude Code: claude mcp add --transport http demo {url}",
                ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


def _readable_password() -> str:
    import secrets

    return "-".join(secrets.token_hex(3) for _ in range(3))


def _child_options() -> dict:
    # Own process group: the terminal's Ctrl-C reaches uvicorn, which then stops the children;
    # and should serve die without that chance, Linux ends them with it.
    return {"start_new_session": True, "preexec_fn": _die_with_parent}


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
