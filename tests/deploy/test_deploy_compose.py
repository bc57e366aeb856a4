"""docker-compose.yml held against the code, without Docker: every service's command runs a real
command with valid options, every variable it or .env.example names is one the platform reads
(and the other way round), health checks, volumes, start order, scaling and the TLS proxy."""

import ipaddress
import json
import os
import re
import shutil
import subprocess
import tomllib
import warnings
from urllib.parse import urlsplit

import pytest
import uvicorn
from celery.app.utils import find_app
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands, load_command_class
from django.urls import resolve
from uvicorn.importer import import_from_string
from uvicorn.main import main as uvicorn_cli

from tests.deploy.deploy_files import (
    APP_SERVICES,
    CADDYFILE,
    COMPOSE_FILE,
    COMPOSE_OWN_VARIABLES,
    ENV_EXAMPLE,
    READ_BY_UVICORN,
    ROOT,
    caddyfile_variables,
    compose,
    dotenv_values,
    env_example,
    interpolate,
    referenced_variables,
    service_command,
    variables_read_by_the_code,
)


@pytest.fixture(scope="module")
def services():
    """The services as compose runs them with a .env made from .env.example and the secrets."""
    variables = {**dotenv_values(), "POSTGRES_PASSWORD": "secret"}
    return interpolate(compose()["services"], variables)


def uvicorn_options(argv: list[str]) -> dict:
    """uvicorn's own command line parser on ``argv`` (raises on an unknown or bad option)."""
    assert argv[0] == "uvicorn"
    return uvicorn_cli.make_context("uvicorn", argv[1:]).params


def celery_options(argv: list[str]):
    """celery's own parser: the app ``-A`` loads and the subcommand's options."""
    assert argv[0] == "celery"
    context = celery_cli.make_context("celery", argv[1:])
    app = find_app(context.params["app"])
    context.obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # click 8.2 renamed protected_args
        name, *rest = [*context.protected_args, *context.args]
    subcommand = celery_cli.get_command(context, name)
    assert subcommand is not None, f"celery has no {name!r} command"
    return app, name, subcommand.make_context(name, rest, parent=context, obj=context.obj).params


def test_every_process_runs_from_one_image_in_production(services):
    assert set(services) >= {*APP_SERVICES, "postgres", "redis", "caddy"}
    images = {services[name]["image"] for name in APP_SERVICES}
    contexts = {services[name]["build"]["context"] for name in APP_SERVICES}
    assert len(images) == 1 and contexts == {"."}
    for name in APP_SERVICES:
        service = services[name]
        assert service["env_file"] == ".env"
        assert service["environment"]["PLATFORM_ENV"] == "production"
        assert service["init"] is True, f"{name}: signals must reach the process (tini)"


def test_migrate_runs_a_real_management_command(services):
    argv = service_command(services["migrate"])
    assert argv[:2] == ["python", "manage.py"] and (ROOT / "manage.py").is_file()
    name, *arguments = argv[2:]
    assert name == "migrate"
    app = get_commands()[name]
    parser = load_command_class(app, name).create_parser("manage.py", name)
    assert parser.parse_args(arguments).interactive is False
    assert services["migrate"]["restart"] == "no"


def test_management_commands_named_in_deploy_files_exist():
    text = "".join(
        path.read_text() for path in (ROOT / "docker-compose.yml", ROOT / "Dockerfile", ENV_EXAMPLE)
    )
    # "manage.py NAME" in prose and shell lines, "manage.py", "NAME" in exec-form commands.
    named = set(re.findall(r'manage\.py"?,? "?(\w+)', text))
    assert named >= {"migrate", "collectstatic"}
    assert named <= set(get_commands()), named - set(get_commands())


def test_web_serves_the_one_asgi_app_behind_a_proxy(services):
    options = uvicorn_options(service_command(services["web"]))
    from config.asgi import PlatformApplication

    application = import_from_string(options["app"])
    assert isinstance(application, PlatformApplication)
    assert options["host"] == "0.0.0.0" and options["port"] == 8000
    # uvicorn believes no forwarded header; the platform does, from FORWARDED_ALLOW_IPS only.
    assert options["proxy_headers"] is False
    assert options["timeout_graceful_shutdown"] > 0
    # No --workers: uvicorn takes the count from WEB_CONCURRENCY.
    assert options["workers"] is None
    grace = int(services["web"]["stop_grace_period"].removesuffix("s"))
    assert grace > options["timeout_graceful_shutdown"], "compose would kill requests in flight"


def test_uvicorn_reads_its_worker_count_from_web_concurrency(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert uvicorn.Config("config.asgi:application", workers=None).workers == 3
    assert env_example()["WEB_CONCURRENCY"].active


def test_worker_and_beat_load_the_platform_celery_app(services):
    from config.celery import app as platform_app

    app, name, options = celery_options(service_command(services["worker"]))
    assert app is platform_app and name == "worker"
    assert options["pool"].__module__ == "celery.concurrency.thread"
    assert options["concurrency"] == 8  # ${WORKER_CONCURRENCY:-8}

    app, name, options = celery_options(service_command(services["beat"]))
    assert app is platform_app and name == "beat"
    schedule_dir = options["schedule"].rsplit("/", 1)[0]
    mount_points = [volume.split(":")[1] for volume in services["beat"]["volumes"]]
    assert schedule_dir in mount_points, "beat's schedule file must be on a volume"


def test_compose_environment_is_read_by_the_platform(services):
    read = variables_read_by_the_code()
    for name in APP_SERVICES:
        for variable in services[name]["environment"]:
            assert variable in read, f"{name} sets {variable}, which no setting reads"


def test_env_example_lists_every_setting_and_nothing_else():
    read = variables_read_by_the_code()
    listed = env_example()
    compose_only = (
        referenced_variables(compose())
        | caddyfile_variables()
        | COMPOSE_OWN_VARIABLES
        | READ_BY_UVICORN
    )
    missing = sorted(set(read) - set(listed))
    where = {name: read[name] for name in missing}
    assert not missing, f".env.example does not list {missing}, read in {where}"
    unknown = sorted(set(listed) - set(read) - compose_only)
    assert not unknown, f".env.example lists {unknown}, which nothing reads"
    undocumented = [name for name, entry in listed.items() if not entry.comment]
    assert not undocumented, f"no comment above {undocumented} in .env.example"


def test_every_variable_compose_interpolates_is_in_env_example():
    missing = referenced_variables(compose()) - set(env_example())
    assert not missing, f"docker-compose.yml uses {sorted(missing)}, not in .env.example"


def test_env_example_ships_no_secret_and_one_origin():
    listed = env_example()
    for secret in ("SECRET_KEY", "UPSTREAM_ENCRYPTION_KEYS", "POSTGRES_PASSWORD"):
        assert listed[secret].active and listed[secret].value == "", f"{secret} must be blank"
    public = urlsplit(listed["PUBLIC_URL"].value)
    assert public.scheme == "https" and public.port is None, "Claude needs https on 443"
    # One origin: Caddy serves PUBLIC_URL itself, no second name that could differ from it.
    assert "DOMAIN" not in listed
    assert set(listed["COMPOSE_PROFILES"].value.split(",")) == {"postgres", "redis", "tls"}


def test_processes_start_after_migrate_and_healthy_backing_services(services):
    # Waited for when their profile runs them; skipped with a managed database or Redis.
    bundled = {"condition": "service_healthy", "required": False}
    assert services["migrate"]["depends_on"] == {"postgres": bundled, "redis": bundled}
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": bundled,
            "redis": bundled,
        }
    assert services["caddy"]["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert services["postgres"]["profiles"] == ["postgres"]
    assert services["redis"]["profiles"] == ["redis"]


def test_a_managed_database_needs_no_bundled_postgres_password():
    """With DATABASE_URL set and the postgres profile dropped, compose starts without
    POSTGRES_PASSWORD; the platform gets the managed URL."""
    managed = "postgres://app:pw@db.example.com:5432/platform"
    variables = {**dotenv_values(), "COMPOSE_PROFILES": "redis,tls", "DATABASE_URL": managed}
    assert variables.get("POSTGRES_PASSWORD") == ""
    services = interpolate(compose()["services"], variables)
    active = {
        name
        for name, service in services.items()
        if set(service.get("profiles", [])) <= set(variables["COMPOSE_PROFILES"].split(","))
    }
    assert "postgres" not in active and {"migrate", "web", "redis", "caddy"} <= active
    for name in APP_SERVICES:
        assert services[name]["environment"]["DATABASE_URL"] == managed


def test_health_checks(services):
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    # Over TCP, as migrate connects: the image's init-time server listens on the socket only.
    pg_isready = services["postgres"]["healthcheck"]["test"][1:]
    assert pg_isready[0] == "pg_isready"
    assert pg_isready[pg_isready.index("-h") + 1] == "127.0.0.1"
    # web keeps the image's HEALTHCHECK (GET /healthz); the other app containers serve no HTTP.
    assert "healthcheck" not in services["web"]
    for name in ("migrate", "worker", "beat"):
        assert services[name]["healthcheck"] == {"disable": True}
    assert resolve("/healthz").func.__module__ == "config.health"
    assert resolve("/readyz").func.__module__ == "config.health"


def test_named_volumes_are_declared_and_hold_the_data(services):
    declared = set(compose()["volumes"])
    used = set()
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"bind mount {source} does not exist"
            else:
                used.add(source)
    assert used == declared
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert services["postgres"]["image"].split(":")[1] in ("16", "17")
    assert services["redis"]["image"].split(":")[1].startswith("7")


def test_replicas_are_settings_and_beat_cannot_be_scaled(services):
    """Replica counts come from .env, so `docker compose up -d` (the upgrade) keeps them;
    beat's fixed container name makes compose refuse `--scale beat=2`."""
    raw = compose()["services"]
    assert raw["web"]["deploy"]["replicas"] == "${WEB_REPLICAS:-1}"
    assert raw["worker"]["deploy"]["replicas"] == "${WORKER_REPLICAS:-1}"
    scaled = interpolate(raw, {**dotenv_values(), "WEB_REPLICAS": "3", "WORKER_REPLICAS": "2"})
    assert scaled["web"]["deploy"]["replicas"] == "3"
    assert scaled["worker"]["deploy"]["replicas"] == "2"
    for name in ("WEB_REPLICAS", "WORKER_REPLICAS"):
        assert env_example()[name].active and env_example()[name].value == "1"
    assert services["beat"]["container_name"]
    for name, service in services.items():
        if name != "beat":
            assert "container_name" not in service, f"{name} could not be scaled"
        if name != "caddy":
            assert "ports" not in service, f"{name} publishes a host port"


def test_scale_web_to_3_and_worker_to_4_needs_nothing_fixed(services):
    """`docker compose up --scale web=3 --scale worker=4`: no replica takes a fixed name, host
    port, address or writable volume another replica also wants; the replica address range holds
    them all; Caddy finds every web replica by the service's DNS name."""
    for name in ("web", "worker"):
        service = services[name]
        assert "container_name" not in service and "ports" not in service, name
        networks = service.get("networks") or {}
        assert not any("ipv4_address" in (n or {}) for n in networks.values()), name
        writable = [v for v in service.get("volumes", []) if not str(v).endswith(":ro")]
        assert not writable, f"{name} replicas would share {writable}"
    (pool,) = compose()["networks"]["default"]["ipam"]["config"]
    replicas = ipaddress.ip_network(pool["ip_range"])
    assert replicas.num_addresses - 2 >= 3 + 4 + 4  # web, worker, and the other services
    assert ipaddress.ip_address(services["caddy"]["networks"]["default"]["ipv4_address"]) not in (
        replicas
    )
    assert re.search(r"dynamic a web \d+", CADDYFILE.read_text())


def test_worker_pools_one_database_connection_per_thread(services):
    _, _, options = celery_options(service_command(services["worker"]))
    assert services["worker"]["environment"]["DB_POOL_SIZE"] == str(options["concurrency"])


def test_fixed_project_name_and_rotated_logs():
    """Volumes are named after the project, not the checkout's folder; every container's log
    is rotated, so a long-running host does not fill its disk."""
    assert compose()["name"] == "mcp-connectors"
    for name, service in compose()["services"].items():
        logging = service["logging"]
        assert logging["driver"] == "json-file", name
        assert logging["options"]["max-size"] and int(logging["options"]["max-file"]) >= 2, name


def test_images_are_tagged_by_version(services):
    """The app image's tag is PLATFORM_VERSION (in step with the project's version), and every
    build pulls a newer base image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert env_example()["PLATFORM_VERSION"].value == project["version"]
    for name in APP_SERVICES:
        assert services[name]["image"] == f"mcp-connector-platform:{project['version']}"
        assert services[name]["build"]["pull"] is True
        assert services[name]["build"]["args"]["PLATFORM_VERSION"] == project["version"]


def test_tls_proxy_is_optional_and_reaches_every_web_replica(services):
    caddy = services["caddy"]
    assert caddy["profiles"] == ["tls"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert caddyfile_variables() == {"PUBLIC_URL", "ACME_EMAIL"} <= set(caddy["environment"])
    assert caddy["environment"]["PUBLIC_URL"] == env_example()["PUBLIC_URL"].value
    text = CADDYFILE.read_text()
    assert re.search(r"^\{\$PUBLIC_URL\} \{", text, re.M), "the site must be PUBLIC_URL"
    upstream = re.search(r"dynamic a (\S+) (\d+)", text)
    web_port = uvicorn_options(service_command(services["web"]))["port"]
    assert upstream and upstream.groups() == ("web", str(web_port))


@pytest.mark.skipif(not shutil.which("caddy"), reason="needs caddy (CI installs Debian's)")
def test_caddyfile_as_caddy_reads_it(services):
    """Caddy's own adapter on the Caddyfile with the environment compose gives it: the site is
    PUBLIC_URL's host, with HSTS, an ACME account email, passive health checks over every
    replica; and `caddy validate` accepts it."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        **services["caddy"]["environment"],
        "ACME_EMAIL": "ops@example.com",
    }
    adapted = subprocess.run(
        ["caddy", "adapt", "--config", str(CADDYFILE)], env=env, capture_output=True, text=True
    )
    assert adapted.returncode == 0, adapted.stderr
    config = json.loads(adapted.stdout)
    [route] = config["apps"]["http"]["servers"]["srv0"]["routes"]
    assert route["match"] == [{"host": [urlsplit(env["PUBLIC_URL"]).hostname]}]
    handlers = route["handle"][0]["routes"][0]["handle"]
    headers = next(h for h in handlers if h["handler"] == "headers")
    assert headers["response"]["set"]["Strict-Transport-Security"] == ["max-age=31536000"]
    proxy = next(h for h in handlers if h["handler"] == "reverse_proxy")
    assert proxy["dynamic_upstreams"]["name"] == "web"
    assert proxy["health_checks"]["passive"]["fail_duration"] > 0
    [policy] = config["apps"]["tls"]["automation"]["policies"]
    assert {issuer["email"] for issuer in policy["issuers"]} == {"ops@example.com"}
    validated = subprocess.run(
        ["caddy", "validate", "--config", str(CADDYFILE)], env=env, capture_output=True, text=True
    )
    assert validated.returncode == 0, validated.stderr


def test_caddy_refuses_to_start_without_an_acme_email(services):
    """The caddy service's command, run by sh as the container would: a clear refusal."""
    command = service_command(services["caddy"])
    assert command[:2] == ["sh", "-c"] and command[2].endswith(
        "exec caddy run --config /etc/caddy/Caddyfile --adapter caddyfile"
    )
    guard = command[2].split("; exec ")[0]
    refused = subprocess.run(
        ["sh", "-c", guard], env={"ACME_EMAIL": ""}, capture_output=True, text=True
    )
    assert refused.returncode == 1 and "set ACME_EMAIL" in refused.stderr
    allowed = subprocess.run(["sh", "-c", guard], env={"ACME_EMAIL": "ops@example.com"})
    assert allowed.returncode == 0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("${A}", "a"),
        ("$A-x", "a-x"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET:-${A}}", "a"),
        ("p:${UNSET:-x${EMPTY:-${A}}y}@h", "p:xay@h"),
        ("$${A}", "${A}"),
        ("${A:+r}", "r"),
        ("${EMPTY:+r}", ""),
        ("${EMPTY+r}", "r"),
    ],
)
def test_interpolation_follows_compose(text, expected):
    """The rules of docs.docker.com/reference/compose-file/interpolation, which the tests above
    rely on to see the values compose would give."""
    assert interpolate(text, {"A": "a", "EMPTY": ""}) == expected


def test_no_variable_is_required_by_interpolation():
    """Compose interpolates every service before it applies profiles: a ${NAME:?} would stop
    deployments that do not run that service (a managed database, no Caddy). Requirements
    live in the services themselves (PostgreSQL's image, Caddy's command, the platform's checks)."""
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?", text)
    interpolate(compose()["services"], dotenv_values())  # a blank .env.example copy: no error


def test_forwarded_headers_are_believed_from_the_compose_proxy_only(services):
    """Every platform container trusts X-Forwarded-For from Caddy's fixed address alone, an
    address on the compose network that no replica can be given."""
    import ipaddress

    network = compose()["networks"]["default"]["ipam"]["config"][0]
    subnet = ipaddress.ip_network(network["subnet"])
    dynamic = ipaddress.ip_network(network["ip_range"])
    caddy = ipaddress.ip_address(services["caddy"]["networks"]["default"]["ipv4_address"])
    assert caddy in subnet and caddy not in dynamic
    for name in APP_SERVICES:
        assert services[name]["environment"]["FORWARDED_ALLOW_IPS"] == str(caddy), name


def test_key_rotation_steps_restart_the_services_before_reencrypting():
    """Re-encrypting while running services know only the old key would leave the worker unable
    to read what it wrote: every place that tells the steps restarts first, and drops the old
    key last."""
    readme = (ROOT / "README.md").read_text()
    rotation = readme[readme.index("### Rotating the encryption key") :]
    dotenv = ENV_EXAMPLE.read_text()
    setting = dotenv.index("\nUPSTREAM_ENCRYPTION_KEYS=")
    comment = dotenv[dotenv.rindex("\n\n", 0, setting) : setting]
    for text, last in ((comment, "drop the old key"), (rotation, "Remove the old key")):
        steps = [text.find(s) for s in ("new key first", "up -d", "upstream_reencrypt", last)]
        assert -1 not in steps and steps == sorted(steps), (steps, text[:700])
