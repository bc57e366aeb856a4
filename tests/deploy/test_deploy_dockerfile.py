"""The Dockerfile, built and run without Docker: its steps carried out as a builder would
(tests/deploy/image_build.py), then the image's processes started from what it built, with the
environment docker-compose.yml gives them, against a private PostgreSQL and Redis.

A broken step fails here: a COPY of a path the build context lacks, a dependency group the
``uv sync`` leaves out (collectstatic or a process cannot import it), code the image does not
hold, a CMD that does not serve, a health check that asks the wrong thing.
"""

import secrets
import subprocess
import time

import httpx
import psycopg
from cryptography.fernet import Fernet

from tests.deploy.deploy_files import compose, dockerfile
from tests.deploy.deployment import Deployment
from tests.deploy.image_build import ImageBuild
from tests.support.live import free_port


def wait_until(check, what: str, deployment: Deployment, timeout: float = 120) -> str:
    """Run ``check`` until it returns a truthy value (a loaded machine starts slowly)."""
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        deployment.alive()
        assert time.monotonic() < deadline, f"{what}\n{deployment.logs()}"
        time.sleep(0.5)


def test_the_image_builds_and_its_processes_serve(tmp_path, private_services):
    postgres, redis_server = private_services
    image = ImageBuild(tmp_path / "image").build()
    app = image.path(image.workdir)

    # What the build left in the image: the code and its dependencies (not the dev group, nor
    # the repository's tests, secrets or local state), and the static files, compressed.
    python = str(app / ".venv" / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import config, connectors, django, psycopg; print(config.__file__)"],
        cwd=app,
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(app)), "the image runs code it does not hold"
    dev = subprocess.run([python, "-c", "import pytest"], cwd=app, capture_output=True)
    assert dev.returncode != 0, "the dev dependency group is in the image"
    for name in (".git", ".env", "tests", "bench", "var/platform.sqlite3", "var/secret_key"):
        assert not (app / name).exists(), f"{name} is in the image"
    static = image.path("/app/var/static/admin/css")
    assert (static / "base.css").is_file() and (static / "base.css.gz").is_file()
    # Processes run as the user the image creates, which owns the one folder it writes (beat's).
    calls = image.calls()
    assert image.user not in ("root", "0")
    assert ["groupadd", "--system", "--gid", "10001", image.user] in calls
    created = next(call for call in calls if call[0] == "useradd")
    assert created[-1] == image.user
    owned = [call[-1] for call in calls if call[0] == "chown" and call[1].startswith(image.user)]
    beat_volume = compose()["services"]["beat"]["volumes"][0].split(":")[1]
    assert owned == [str(image.path(beat_volume))] and image.path(beat_volume).is_dir()
    # uv comes from PyPI at the pinned version, which is the one that built here.
    args = dict(
        i.arguments.split("=", 1) for i in dockerfile() if i.keyword == "ARG" and "=" in i.arguments
    )
    assert ["pip", "install", "--no-cache-dir", f"uv=={args['UV_VERSION']}"] in calls
    version = subprocess.run(["uv", "--version"], capture_output=True, text=True).stdout
    assert version.split()[1] == args["UV_VERSION"], f"built with {version}"

    # The processes, from the image, with compose's environment.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = postgres.url.rsplit("/", 1)[0] + "/platform"
    dotenv = {
        "PUBLIC_URL": base,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "UPSTREAM_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url(0),
        "CACHE_REDIS_URL": redis_server.url(1),
        "WEB_CONCURRENCY": "1",
        "WORKER_CONCURRENCY": "2",
        "EMAIL_HOST": "127.0.0.1",  # production refuses to start without a mail server
    }
    (tmp_path / "run").mkdir()
    deployment = Deployment(tmp_path / "run", dotenv, port, image=image)
    assert deployment.cwd() == app

    deployment.run("migrate")
    with psycopg.connect(database_url) as db:
        applied = db.execute("SELECT count(*) FROM django_migrations").fetchone()[0]
        tables = db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'tenants_connector'"
        ).fetchone()[0]
    assert applied > 0 and tables == 1
    manage = ["python", "manage.py"]
    deployment.run("web", [*manage, "tenant", "create", "acme", "--name", "Acme"])
    created = deployment.run("web", [*manage, "connector", "create", "acme", "quickbooks"])
    url = created.split()[-1]
    assert url == f"{base}/t/acme/quickbooks/mcp"

    deployment.start("web", image.cmd)  # the image's CMD, on this test's port
    deployment.start("worker")
    try:
        # The image's HEALTHCHECK passes, as Docker runs it (asking this test's port).
        health = [deployment.local(word) for word in image.healthcheck]
        env = deployment.environment("web")

        def healthy():
            check = subprocess.run(
                [*health, f"{base}/healthz"], env=env, cwd=app, capture_output=True, text=True
            )
            return check.returncode == 0

        wait_until(healthy, "the image's health check never passed", deployment)
        challenge = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=30)
        assert challenge.status_code == 401
        assert "resource_metadata=" in challenge.headers["www-authenticate"]
        assert httpx.get(f"{base}/static/admin/css/base.css", timeout=30).status_code == 200

        # The worker answers a ping through the broker.
        def pong():
            answer = subprocess.run(
                deployment.argv("worker", ["celery", "-A", "config", "inspect", "ping", "-t", "5"]),
                env=deployment.environment("worker"),
                cwd=app,
                capture_output=True,
                text=True,
            )
            return "pong" in answer.stdout

        wait_until(pong, "the worker never answered a ping", deployment)
        deployment.alive()
    finally:
        codes = deployment.stop()
    # A single uvicorn process exits by the signal it was stopped with, after a clean shutdown.
    assert codes["worker"] == 0 and codes["web"] in (0, -15), (codes, deployment.logs())
