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

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
from cryptography.fernet import Fernet

from tests.deploy.deployment import (
    APP_SERVICES,
    Deployment,
    children,
    needs_postgres,
    needs_redis,
    wait_healthy,
)
from tests.support.live import free_port
from tests.support.mcp_client import MemoryStorage, connected, oauth_provider
from tests.support.oauth import Browser

pytestmark = [needs_postgres, needs_redis]


def test_compose_commands_run_the_platform(tmp_path, compose_database, compose_redis):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    broker, cache = compose_redis
    dotenv = {
        # What an operator's .env holds (see .env.example), for this machine.
        "PUBLIC_URL": base,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "UPSTREAM_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": compose_database,
        "REDIS_URL": broker,
        "CACHE_REDIS_URL": cache,
        "WEB_CONCURRENCY": "2",
        "EMAIL_HOST": "127.0.0.1",  # production refuses to start without a mail server
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
