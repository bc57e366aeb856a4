"""The Dockerfile held against the code and the compose file, without Docker; and its build-time
collectstatic run outside Docker, exactly as written."""

import fnmatch
import os
import re
import shlex
import subprocess
import sys
import tomllib

from django.conf import settings
from django.urls import resolve

from tests.deploy.deploy_files import (
    DOCKERIGNORE,
    HEALTHCHECK_SCRIPT,
    ROOT,
    compose,
    dockerfile,
    exec_form,
    service_command,
)


def final_stage():
    instructions = dockerfile()
    last = [i for i in instructions if i.keyword == "FROM"][-1].stage
    return [i for i in instructions if i.stage == last]


def test_multi_stage_on_python_slim_with_uv_from_pypi():
    instructions = dockerfile()
    stages = [i.arguments for i in instructions if i.keyword == "FROM"]
    assert len(stages) >= 2
    assert all(
        re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim AS \w+", stage) for stage in stages
    ), stages
    args = dict(
        i.arguments.split("=", 1) for i in instructions if i.keyword == "ARG" and "=" in i.arguments
    )
    assert args["PYTHON_VERSION"] in ("3.12", "3.13")
    runs = [i for i in instructions if i.keyword == "RUN"]
    # uv pinned: a new uv release cannot change how the image builds.
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"])
    assert any('pip install --no-cache-dir "uv==${UV_VERSION}"' in run.arguments for run in runs)
    assert any("uv sync --frozen --no-dev" in run.arguments for run in runs)
    envs = " ".join(i.arguments for i in instructions if i.keyword == "ENV")
    assert "UV_PYTHON_DOWNLOADS=never" in envs, "uv must not download a Python build"
    # Packages come from PyPI (pip, uv) only: nothing fetched from anywhere else.
    everything = " ".join(i.arguments for i in instructions)
    assert not re.search(r"\b(curl|wget)\b|https?://", everything)
    assert not [i for i in instructions if i.keyword == "ADD"]


def test_runs_as_a_non_root_user():
    stage = final_stage()
    users = [i for i in stage if i.keyword == "USER"]
    assert users and users[-1].arguments not in ("root", "0")
    keywords = [i.keyword for i in stage]
    assert keywords.index("USER") < keywords.index("CMD")
    # The runtime stage copies the built /app rather than installing anything itself.
    assert not any("uv sync" in i.arguments or "pip" in i.arguments for i in stage)


def test_image_holds_every_source_root_the_project_installs():
    """A new top-level package in pyproject.toml must be copied into the image too."""
    copied = {
        source
        for i in dockerfile()
        if i.keyword == "COPY" and not i.arguments.startswith("--from")
        for source in i.arguments.split()[:-1]
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {"manage.py", "pyproject.toml", "uv.lock", "deploy", "platform"}
    needed.add(project["project"]["readme"])  # the package build reads it
    for pattern in packages:
        name = pattern.rstrip("*")
        if (ROOT / name).is_dir():  # a package at the top (connectors); the rest are in platform/
            needed.add(name)
    assert needed <= copied, f"not copied into the image: {needed - copied}"
    assert str(settings.TEMPLATES[0]["DIRS"][0].relative_to(ROOT)) in copied


def test_dockerignore_keeps_secrets_and_local_state_out_but_not_the_sources():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    excluded = {p for p in patterns if not p.startswith("!")}

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) for p in excluded) and f"!{path}" not in patterns

    for path in (".env", ".git", ".venv", "var", "tests"):
        assert ignored(path), f"{path} would be sent to the Docker build"
    for instruction in dockerfile():
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
            for source in instruction.arguments.split()[:-1]:
                assert not ignored(source), f".dockerignore hides {source} from COPY"


def test_health_check_asks_healthz_with_the_image_python():
    healthcheck = next(i for i in final_stage() if i.keyword == "HEALTHCHECK")
    argv = exec_form(healthcheck.arguments.split(" CMD ", 1)[1])
    assert argv == ["/app/.venv/bin/python", "/app/deploy/healthcheck.py"]
    script = HEALTHCHECK_SCRIPT.read_text()
    path = re.search(r'DEFAULT_URL = "http://127\.0\.0\.1:(\d+)(/\w+)"', script)
    assert path and resolve(path[2]).func.__module__ == "config.health"
    web = service_command(compose()["services"]["web"])
    assert web[web.index("--port") + 1] == path[1], "the health check must ask web's port"


def test_cmd_is_the_compose_web_command():
    cmd = exec_form(next(i for i in final_stage() if i.keyword == "CMD").arguments)
    assert cmd == service_command(compose()["services"]["web"])
    assert cmd[:2] == ["uvicorn", "config.asgi:application"]


def test_runtime_environment():
    env = " ".join(i.arguments for i in final_stage() if i.keyword == "ENV")
    assert "PATH=/app/.venv/bin:$PATH" in env
    assert "PLATFORM_ENV=production" in env and "VAR_DIR=/app/var" in env
    assert "WEB_CONCURRENCY=" in env
    # Secrets never become part of the image's environment.
    assert "SECRET_KEY" not in env and "UPSTREAM_ENCRYPTION_KEYS" not in env
    beat = compose()["services"]["beat"]["volumes"][0].split(":")[1]
    assert any(
        i.keyword == "RUN" and f"chown app:app {beat}" in i.arguments for i in final_stage()
    ), "beat's volume must be writable by the app user"


def test_build_time_collectstatic_works_as_written(tmp_path):
    """The Dockerfile's collectstatic RUN, outside Docker: production settings accept its
    throwaway secrets and the static files land in VAR_DIR/static."""
    run = next(i for i in dockerfile() if i.keyword == "RUN" and "collectstatic" in i.arguments)
    words = shlex.split(run.arguments)
    assignments = dict(word.split("=", 1) for word in words if re.match(r"[A-Z_]+=", word))
    argv = [word for word in words if not re.match(r"[A-Z_]+=", word)]
    assert argv[:3] == [".venv/bin/python", "manage.py", "collectstatic"]
    assert assignments["PLATFORM_ENV"] == "production"
    assert assignments["VAR_DIR"] == "/app/var"
    # A docker build has none of the deployment's variables: neither does this run.
    tmp_path.chmod(0o755)  # as /app/var's parent is in the image
    env = {"PATH": os.environ["PATH"], **assignments, "VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, *argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "static" / "admin" / "css" / "base.css").is_file()
    assert (tmp_path / "static" / "admin" / "css" / "base.css.gz").is_file(), "not compressed"
    # Only the static files: no secret, SQLite file or broker folder is left in the image, and
    # the folder stays readable for the app user (settings make a folder they use private).
    assert [path.name for path in tmp_path.iterdir()] == ["static"]
    assert tmp_path.stat().st_mode & 0o005 == 0o005, "the app user could not read /app/var"
