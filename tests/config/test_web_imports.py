"""The web process loads only the client libraries its configuration and its work use: without
Redis (the embedded default) it never imports redis, whose client costs about 10 MB of resident
memory per process; authlib waits for a sign-in through an identity provider, and the
OpenTelemetry SDK and instrumentations for tracing to be configured, prometheus_client for
metrics to be; Celery (and kombu) for the
first task the process sends; on SQLite, psycopg is never loaded, not even by DRF through
django.contrib.postgres; drf_spectacular's schema machinery (and with it DRF's test module,
django.test and unittest) for the API's OpenAPI document; requests, urllib3 and PyYAML, which
django-oauth-toolkit and DRF import, for their first use (issue 17, goal 6: bench/web_memory.py)."""

import ast
import subprocess
import sys

import pytest

from tests.support.processes import embedded_process_env

WATCHED = (
    "redis",
    "authlib",
    "opentelemetry.sdk",
    "opentelemetry.instrumentation",
    "celery",
    "kombu",
    "psycopg",
    "django.contrib.postgres.fields",
    "prometheus_client",
)


@pytest.mark.parametrize("redis_url", ["", "redis://127.0.0.1:1/0"])
def test_the_web_app_loads_redis_only_when_configured_and_no_sso_or_tracing_libraries(
    tmp_path, redis_url
):
    script = (
        f"import os, sys\nWATCHED = {WATCHED!r}\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        "import config.asgi\n"
        "from config.asgi import serious_check_messages\n"
        "serious_check_messages()\n"
        "from config.limits import limits_take, slot_limiter\n"
        "slot_limiter()\n"
        "try:\n"
        "    limits_take([('x', 1, 60)])\n"
        "except Exception:\n"  # nothing listens on port 1
        "    pass\n"
        # a module made unimportable on purpose is None in sys.modules: not loaded
        "print(sorted(m for m, module in list(sys.modules.items())\n"
        "             if m in WATCHED and module is not None))\n"
    )
    env = embedded_process_env(tmp_path)
    if redis_url:
        env["CACHE_REDIS_URL"] = redis_url
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, timeout=120, capture_output=True
    ).stdout.decode()
    loaded = set(ast.literal_eval(out.strip().splitlines()[-1]))
    if redis_url:  # redis-py imports the OpenTelemetry SDK's metrics itself
        assert loaded == {"redis", "opentelemetry.sdk"}
    else:
        assert loaded == set()


SCHEMA_ONLY = (
    "drf_spectacular.openapi",
    "drf_spectacular.plumbing",
    "drf_spectacular.views",
    "rest_framework.test",
    "django.test",
    "unittest",
)


# A fresh web process on the embedded default with every URL resolved to its view (what the
# first requests load), then the test's own lines; the last line it prints is a literal.
EVERY_VIEW = (
    "import os, sys\n"
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
    "import config.asgi\n"
    "from config.asgi import serious_check_messages\n"
    "serious_check_messages()\n"
    "from django.urls import get_resolver\n"
    "def resolve_all(patterns):\n"
    "    for pattern in patterns:\n"
    "        if hasattr(pattern, 'url_patterns'):\n"
    "            resolve_all(pattern.url_patterns)\n"
    "        else:\n"
    "            pattern.callback\n"
    "resolve_all(get_resolver().url_patterns)\n"
)


def _with_every_view(tmp_path, lines: str):
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", EVERY_VIEW + lines],
        env=embedded_process_env(tmp_path),
        check=True,
        timeout=120,
        capture_output=True,
    ).stdout.decode()
    return ast.literal_eval(out.strip().splitlines()[-1])


def test_the_web_app_with_every_view_loaded_imports_no_schema_machinery(tmp_path):
    """Every URL resolved to its view, the OAuth validator too: the OpenAPI document's
    machinery waits for /api/schema (api/openapi.py), and the document still carries the
    views' annotations (tests/api/test_api_schema.py)."""
    loaded = _with_every_view(
        tmp_path,
        f"WATCHED = {SCHEMA_ONLY!r}\n"
        "import oauth2_provider.oauth2_validators\n"
        "print(sorted(m for m in WATCHED if m in sys.modules))\n",
    )
    assert loaded == []


FIRST_USE_ONLY = ("requests.sessions", "urllib3.connectionpool", "yaml.loader")


def test_the_web_app_loads_requests_urllib3_and_yaml_at_their_first_use(tmp_path):
    """django-oauth-toolkit imports requests and urllib3, DRF PyYAML, when they load: in the web
    process (every view loaded) they stay stand-ins until the code that uses them runs
    (config.deferred_imports), and then work."""
    at_start, used, after = _with_every_view(
        tmp_path,
        f"WATCHED = {FIRST_USE_ONLY!r}\n"
        "from oauth2_provider import cimd, oauth2_validators\n"
        "from rest_framework import compat\n"
        "at_start = sorted(m for m in WATCHED if m in sys.modules)\n"
        "used = [oauth2_validators.requests.Session.__module__, cimd.urllib3.Timeout.__module__,\n"
        "        compat.yaml.safe_dump({'a': 1}).strip()]\n"
        "print(repr((at_start, used, sorted(m for m in WATCHED if m in sys.modules))))\n",
    )
    assert at_start == []
    assert used == ["requests.sessions", "urllib3.util.timeout", "a: 1"]
    assert after == sorted(FIRST_USE_ONLY)
