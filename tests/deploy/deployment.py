"""The compose deployment's processes run outside Docker, as compose would run them.

Each service's command is taken from docker-compose.yml and run with the image's environment
(Dockerfile ENV), a .env, and the service's own ``environment``. The only changes: ``python``,
``uvicorn`` and ``celery`` are this virtualenv's (the image puts /app/.venv/bin first on PATH),
web listens on a given loopback port instead of 0.0.0.0:8000, and paths under the image's
/app/var and the services' tmpfs mounts are under a temporary folder.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.deploy.deploy_files import (
    APP_SERVICES,
    HEALTHCHECK_SCRIPT,
    ROOT,
    compose,
    dockerfile,
    interpolate,
    service_command,
    variables_read_by_the_code,
)
from tests.deploy.image_build import ImageBuild

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")

needs_postgres = pytest.mark.skipif(
    not DATABASE_URL.startswith(("postgres://", "postgresql://")),
    reason="needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)",
)
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="needs Redis: set REDIS_URL=redis://... (CI does)"
)

VENV_BIN = Path(sys.executable).parent
IMAGE_VAR_DIR = "/app/var"


# The operator's CLI makes the tenant, member (bob, password pw-12345) and echo connector; bob's
# client gets a token as the token endpoint would store it (the OAuth flow itself is tested
# elsewhere). Run it with `manage.py shell -c TOKEN_SETUP % token`: it prints the MCP URL.
TOKEN_SETUP = """
from datetime import timedelta
from django.core.management import call_command
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application
from authserver.models import TokenAudience
from tenants.models import Connector
call_command("tenant", "create", "acme", "--name", "Acme")
call_command("tenant", "add-member", "acme", "bob", "--password", "pw-12345")
call_command("connector", "create", "acme", "echo")
connector = Connector.objects.get(tenant__slug="acme", slug="echo")
app = Application.objects.create(
    name="load", client_type="public", authorization_grant_type="authorization-code",
    redirect_uris="https://claude.ai/api/mcp/auth_callback",
)
access = AccessToken.objects.create(
    user=connector.tenant.memberships.get().user, application=app, token="%s", scope="mcp",
    expires=timezone.now() + timedelta(hours=1), resource=[connector.url],
)
TokenAudience.objects.create(connector=connector, access_token=access)
"""


@contextmanager
def scratch_database(prefix: str = "compose") -> Iterator[str]:
    """A new, empty PostgreSQL database on DATABASE_URL's server (its URL); dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DATABASE_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(DATABASE_URL)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(DATABASE_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_connections(database_url: str) -> int:
    """How many server connections (backends) are open to the database of ``database_url``."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(DATABASE_URL, autocommit=True) as admin:
        return admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()[0]


def image_environment() -> dict[str, str]:
    """The final stage's ENV, as the container starts with it."""
    final = [i for i in dockerfile() if i.keyword == "FROM"][-1].stage
    env = {}
    for instruction in dockerfile():
        if instruction.keyword == "ENV" and instruction.stage == final:
            env.update(word.split("=", 1) for word in shlex.split(instruction.arguments))
    return env


class Deployment:
    """The app services of docker-compose.yml as local processes."""

    def __init__(
        self, tmp_path: Path, dotenv: dict[str, str], port: int, image: ImageBuild | None = None
    ):
        """``image``: a build of the Dockerfile (tests/deploy/image_build.py) to run the
        processes from, as the containers do: its venv, code and static files under its /app,
        its final stage's ENV and WORKDIR. Without one, this checkout and its virtualenv."""
        self.tmp_path = tmp_path
        self.image = image
        self.var_dir = tmp_path / "var"
        self.var_dir.mkdir()
        self.port = port
        self.services = interpolate(compose()["services"], dotenv)
        self.dotenv = dotenv
        self.processes: dict[str, subprocess.Popen] = {}
        # Docker mounts each service's tmpfs (web's Prometheus folder) and volumes: here,
        # folders under tmp_path (the image's /app/var too).
        self.mounts = {IMAGE_VAR_DIR: str(self.var_dir)} if image is None else {}
        for service in APP_SERVICES:
            for mount in self.services[service].get("tmpfs", []):
                path = mount.split(":")[0]
                self.mounts[path] = str(tmp_path / "tmpfs" / path.strip("/"))
                Path(self.mounts[path]).mkdir(parents=True, exist_ok=True)
            for volume in self.services[service].get("volumes", []):
                Path(self.local(volume.split(":")[1])).mkdir(parents=True, exist_ok=True)

    def environment(self, service: str) -> dict[str, str]:
        """Image ENV, then .env (env_file), then the service's ``environment``, as compose
        layers them."""
        # Start clean: nothing the platform reads may leak in from the test run's environment.
        read = set(variables_read_by_the_code())
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in read and key.removesuffix("_FILE") not in read
        }
        if self.image is not None:
            env.update(self.image.env)
        else:
            env.update(image_environment(), PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
        env.update(self.dotenv)  # env_file: .env
        env.update(self.services[service]["environment"])
        # The image's paths, here.
        env = {key: self.local(value) for key, value in env.items()}
        if self.image is None:
            # The source roots, which the image's install of the project provides (a local
            # editable install may predate a new app); and tests/, for the test connector kind.
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT)])
        return env

    def local(self, text: str) -> str:
        for image_path, local_path in self.mounts.items():
            text = text.replace(image_path, local_path)
        return self.image.translate(text) if self.image is not None else text

    def cwd(self) -> Path:
        return ROOT if self.image is None else self.image.path(self.image.workdir)

    def argv(
        self, service: str, command: list[str] | None = None, serve: bool = False
    ) -> list[str]:
        """The service's command (or ``command``), its program found as the container finds it.
        ``serve``: the command is web's server, which listens on this test's loopback port."""
        argv = [self.local(arg) for arg in (command or service_command(self.services[service]))]
        if self.image is not None:
            argv[0] = shutil.which(argv[0], path=self.environment(service)["PATH"]) or argv[0]
        else:
            argv[0] = {"python": sys.executable}.get(argv[0], str(VENV_BIN / argv[0]))
        if service == "web" and (command is None or serve):
            argv[argv.index("--host") + 1] = "127.0.0.1"
            argv[argv.index("--port") + 1] = str(self.port)
        return argv

    def run(self, service: str, command: list[str] | None = None) -> str:
        """``docker compose run --rm SERVICE [COMMAND]``: wait for it, return its output."""
        result = subprocess.run(
            self.argv(service, command),
            cwd=self.cwd(),
            env=self.environment(service),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{service} {command or ''} failed:\n{result.stderr[-4000:]}"
        return result.stdout

    def start(self, service: str, command: list[str] | None = None) -> None:
        """``docker compose up SERVICE``: in the background, its output to SERVICE.log.
        ``command``: another command to serve with (the image's CMD for web)."""
        with open(self.tmp_path / f"{service}.log", "w") as log:  # the child keeps its own copy
            self.processes[service] = subprocess.Popen(
                self.argv(service, command, serve=True),
                cwd=self.cwd(),
                env=self.environment(service),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self, service: str) -> str:
        return (self.tmp_path / f"{service}.log").read_text()

    def logs(self) -> str:
        """The end of every log, for failure messages."""
        return "\n".join(f"--- {name}:\n{self.log(name)[-3000:]}" for name in self.processes)

    def alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited early\n{self.logs()}"

    def stop(self) -> dict[str, int | None]:
        """``docker compose stop``: SIGTERM to each process, then wait (SIGKILL after 30 s)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = None
        return codes


def children(pid: int) -> list[int]:
    """Linux's list of the processes ``pid`` started (empty once it has exited)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except FileNotFoundError:
        pass
    return found


def wait_healthy(deployment: Deployment, base: str, timeout: float = 60) -> None:
    """What Docker does with the image's HEALTHCHECK: run it until it passes."""
    env = deployment.environment("web")
    deadline = time.monotonic() + timeout
    while True:
        check = subprocess.run(
            [sys.executable, str(HEALTHCHECK_SCRIPT), f"{base}/healthz"],
            env=env,
            capture_output=True,
            text=True,
        )
        if check.returncode == 0:
            return
        deployment.alive()
        assert time.monotonic() < deadline, f"never healthy: {check.stderr}\n{deployment.logs()}"
        time.sleep(0.3)
