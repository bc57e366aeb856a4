"""``manage.py serve``: the whole platform in one command.

Migrates, creates a demo tenant on first run, starts each installed kind's embedded emulator
(embedded default only; a kind skips it when real credentials are configured), a Celery worker
and beat, and serves web and MCP with uvicorn. Ctrl-C (SIGINT) or SIGTERM stops the children,
then the web server.

An emulator keeps its state under VAR_DIR, but it restarted with us: whatever it no longer
knows is dead, so the worker asks it about each of its connections at once (a forced refresh),
and a lost grant shows as "needs reconnect" before anyone's first tool call.
"""

import os
import signal
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from config.env import env, kept_secret
from connectors.base import EmbeddedSetup, all_kinds


class Command(BaseCommand):
    help = "Run the platform: web + MCP, a Celery worker and beat (and the kinds' emulators)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, help="port (default: PUBLIC_URL's port)")
        parser.add_argument("--no-worker", action="store_true", help="web only")
        parser.add_argument("--no-demo", action="store_true", help="create no demo tenant")

    def handle(self, *args, host, port, no_worker, no_demo, **options):
        if port and not _public_url_configured():
            # Every URL we hand out (banner, 401 challenge, metadata, issuer) derives from
            # PUBLIC_URL when settings load: with none configured, the port chooses it, so
            # start again with it set rather than patch settings already derived from it.
            os.environ["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
            os.execv(sys.executable, [sys.executable, *sys.argv])
        public = urlsplit(settings.PUBLIC_URL)
        port = port or public.port or (443 if public.scheme == "https" else 80)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        children: list[subprocess.Popen] = []
        child_env = {"PYTHONPATH": os.pathsep.join(sys.path)}
        try:
            emulators = self._start_emulators(children, child_env) if settings.EMBEDDED else []
            if not no_worker:
                children += self._start_celery(child_env)
                self._check_connections(providers=[p for _, p in emulators if p])
            demo = None if no_demo else self._demo()
            self._banner(host, port, demo, [banner for banner, _ in emulators])
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

    def _start_emulators(
        self, children: list[subprocess.Popen], child_env: dict[str, str]
    ) -> list[tuple[str, str]]:
        """Each kind's embedded emulator (each on a free port), and point this
        process and its workers at them; returns each one's banner line and upstream provider."""
        emulators = []
        for kind in all_kinds().values():
            if kind.embedded_emulator is None:
                continue
            setup = EmbeddedSetup(
                public_url=settings.PUBLIC_URL,
                port=_free_port(),  # not "the web port + n", which may well be taken
                callback_url=(
                    settings.PUBLIC_URL
                    + reverse("upstream-callback", kwargs={"provider": kind.upstream.provider})
                    if kind.upstream
                    else ""
                ),
                var_dir=settings.VAR_DIR,
                kept_secret=lambda name: kept_secret(settings.VAR_DIR / name),
                popen_options={
                    "env": {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                    **_child_options(),
                },
            )
            try:
                started = kind.embedded_emulator(setup)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from None
            if started is None:
                continue
            children.append(started.process)
            child_env.update(started.environment)
            # This process serves the web app: point it at the emulator too.
            os.environ.update(started.environment)
            for name, value in started.environment.items():
                setattr(settings, name, value)
            emulators.append((started.banner, kind.upstream.provider if kind.upstream else ""))
        return emulators

    def _check_connections(self, *, providers: list[str]) -> None:
        """Queue the worker's check of the restarted emulators' connections (upstream.tasks)."""
        from config.celery import app  # noqa: F401  (sent through our broker, as web does)
        from upstream.tasks import upstream_check_provider

        for provider in providers:
            upstream_check_provider.delay(provider)

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

    def _banner(self, host: str, port: int, demo: dict | None, banners: list[str]) -> None:
        base = settings.PUBLIC_URL
        lines = [
            f"Platform on {base} (listening on {host}:{port})",
            f"  dashboard:  {base}/dashboard/    admin: {base}/admin/",
        ]
        lines += [f"  {line}" for line in banners]
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


def _public_url_configured() -> bool:
    return bool(env("PUBLIC_URL"))  # set, or read from PUBLIC_URL_FILE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
