"""The compose deployment, run outside Docker against PostgreSQL and Redis.

Each service's command is taken from docker-compose.yml and run as compose would run it: with
the image's environment (Dockerfile ENV), a .env, and the service's own ``environment``, on a
fresh database. `migrate` first; then web, worker and beat; a tenant, a member and a connector
made with the CLI; the official MCP SDK client connects through the OAuth flow and calls a
tool; readiness sees the database, the broker and beat's sweeps; SIGTERM stops every process
cleanly. The only changes to the commands: ``python``, ``uvicorn`` and ``celery`` are this
virtualenv's (the image puts /app/.venv/bin first on PATH), web listens on a free loopback port
instead of 0.0.0.0:8000, and paths under the image's /app/var are under a temporary folder.
"""

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
import psycopg
import pytest
import redis
from cryptography.fernet import Fernet

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
from tests.support.live import free_port
from tests.support.mcp_client import MemoryStorage, connected, oauth_provider
from tests.support.oauth import Browser

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = [
    pytest.mark.skipif(
        not DATABASE_URL.startswith(("postgres://", "postgresql://")),
        reason="the compose run needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)",
    ),
    pytest.mark.skipif(
        not REDIS_URL, reason="the compose run needs Redis: set REDIS_URL=redis://... (CI does)"
    ),
]

VENV_BIN = Path(sys.executable).parent
IMAGE_VAR_DIR = "/app/var"


@pytest.fixture
def compose_database():
    """A new PostgreSQL database, as the bundled postgres service starts empty; dropped after."""
    name = f"compose_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DATABASE_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(DATABASE_URL)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(DATABASE_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def compose_redis():
    """Redis databases 3 (broker) and 4 (cache), which the other tests never use; emptied."""
    base = urlsplit(REDIS_URL)
    urls = [urlunsplit(base._replace(path=f"/{db}")) for db in (3, 4)]
    for url in urls:
        redis.Redis.from_url(url).flushdb()
    yield urls
    for url in urls:
        redis.Redis.from_url(url).flushdb()


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

    def __init__(self, tmp_path: Path, dotenv: dict[str, str], port: int):
        self.tmp_path = tmp_path
        self.var_dir = tmp_path / "var"
        self.var_dir.mkdir()
        self.port = port
        self.services = interpolate(compose()["services"], dotenv)
        self.dotenv = dotenv
        self.processes: dict[str, subprocess.Popen] = {}
        # Docker mounts each service's volumes: here, folders.
        for service in APP_SERVICES:
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
        image = image_environment()
        env.update(image, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
        env.update(self.dotenv)  # env_file: .env
        env.update(self.services[service]["environment"])
        # The image's paths, here.
        env = {key: self.local(value) for key, value in env.items()}
        # The source roots, which the image's install of the project provides (a local editable
        # install may predate a new app); and tests/, for the test connector kind.
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT)])
        return env

    def local(self, text: str) -> str:
        return text.replace(IMAGE_VAR_DIR, str(self.var_dir))

    def argv(self, service: str, command: list[str] | None = None) -> list[str]:
        argv = [self.local(arg) for arg in (command or service_command(self.services[service]))]
        program = {"python": sys.executable}.get(argv[0], str(VENV_BIN / argv[0]))
        argv[0] = program
        if service == "web" and command is None:
            argv[argv.index("--host") + 1] = "127.0.0.1"
            argv[argv.index("--port") + 1] = str(self.port)
        return argv

    def run(self, service: str, command: list[str] | None = None) -> str:
        """``docker compose run --rm SERVICE [COMMAND]``: wait for it, return its output."""
        result = subprocess.run(
            self.argv(service, command),
            cwd=ROOT,
            env=self.environment(service),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{service} {command or ''} failed:\n{result.stderr[-4000:]}"
        return result.stdout

    def start(self, service: str) -> None:
        """``docker compose up SERVICE``: in the background, its output to SERVICE.log."""
        with open(self.tmp_path / f"{service}.log", "w") as log:  # the child keeps its own copy
            self.processes[service] = subprocess.Popen(
                self.argv(service),
                cwd=ROOT,
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


def test_compose_commands_run_the_platform(tmp_path, compose_database, compose_redis):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    broker, cache = compose_redis
    dotenv = {
        # What an operator's .env holds (see .env.example), for this machine.
        "PUBLIC_URL": base,
        "DOMAIN": "127.0.0.1",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "UPSTREAM_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "POSTGRES_PASSWORD": "unused-here",
        "DATABASE_URL": compose_database,
        "REDIS_URL": broker,
        "CACHE_REDIS_URL": cache,
        "WEB_CONCURRENCY": "2",
        "UPSTREAM_SWEEP_SECONDS": "2",
        # The emulator is refused in production: connect to the echo test connector instead.
        "EXTRA_CONNECTOR_KINDS": "tests.support.kinds.echo_kind",
    }
    deployment = Deployment(tmp_path, dotenv, port)
    for service in APP_SERVICES:
        env = deployment.environment(service)
        assert env["PLATFORM_ENV"] == "production"
        assert env["DATABASE_URL"] == compose_database and env["REDIS_URL"] == broker

    deployment.run("migrate")  # compose starts nothing else until it has succeeded
    try:
        for service in ("web", "worker", "beat"):
            deployment.start(service)

        # docker compose exec web python manage.py ...: the operator's CLI, while web starts.
        manage = ["python", "manage.py"]
        deployment.run("web", [*manage, "tenant", "create", "acme", "--name", "Acme Inc"])
        with ThreadPoolExecutor() as pool:  # two operators at two terminals
            member = ["tenant", "add-member", "acme", "bob", "--password", "bob-pass-123"]
            connector = ["connector", "create", "acme", "echo"]
            _, created = pool.map(
                lambda command: deployment.run("web", [*manage, *command]), (member, connector)
            )
        url = created.strip().splitlines()[-1]
        assert url == f"{base}/t/acme/echo/mcp"

        wait_healthy(deployment, base)
        workers = [
            pid
            for pid in children(deployment.processes["web"].pid)
            if "multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert len(workers) == 2, "uvicorn did not take its worker count from WEB_CONCURRENCY"

        unauthenticated = httpx.post(url, json={})
        assert unauthenticated.status_code == 401
        assert "resource_metadata=" in unauthenticated.headers["www-authenticate"]

        async def whoami():
            provider = oauth_provider(url, Browser("bob", "bob-pass-123"), MemoryStorage())
            async with connected(url, provider) as client:
                return await client.call_tool("whoami", {})

        result = anyio.run(whoami)
        assert not result.is_error
        assert result.structured_content["tenant"] == "acme"
        assert result.structured_content["connector"] == "echo"
        assert result.structured_content["user"] == "bob"

        # Beat schedules the sweep every 2 s and the worker runs it: readiness sees it.
        deadline = time.monotonic() + 30
        while True:
            ready = httpx.get(f"{base}/readyz")
            checks = ready.json()["checks"]
            if checks["beat"] == "ok":
                break
            deployment.alive()
            assert time.monotonic() < deadline, f"no sweep ran: {checks}\n{deployment.logs()}"
            time.sleep(0.5)
        assert ready.status_code == 200
        assert checks["database"] == "ok" and checks["broker"] == "ok"
        deployment.alive()
    finally:
        web = deployment.processes.get("web")
        web_workers = children(web.pid) if web else []
        codes = deployment.stop()

    assert codes == {"web": 0, "worker": 0, "beat": 0}, deployment.logs()
    # uvicorn's workers (and multiprocessing's resource tracker, which follows its parent out)
    # must not outlive the supervisor.
    deadline = time.monotonic() + 5
    while left := [pid for pid in web_workers if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < deadline, f"web left processes running: {left}"
        time.sleep(0.1)
    # Graceful: uvicorn finished each worker's requests and lifespan; Celery's warm shutdown.
    assert deployment.log("web").count("Finished server process") == 2
    assert "Warm shutdown" in deployment.log("worker")
    assert "beat: Starting" in deployment.log("beat")
