"""HSTS whenever the platform is served over https (PUBLIC_URL), never on plain http."""

import subprocess
import sys

SCRIPT = """
import django
django.setup()
from django.test import Client
response = Client().get("/healthz", secure={secure}, HTTP_HOST="connectors.example.com")
print(response.headers.get("Strict-Transport-Security", "none"))
"""


def _hsts(public_url: str, tmp_path, *, secure: bool) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(secure=secure)],
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": ":".join(sys.path),
            "VAR_DIR": str(tmp_path),
            "PUBLIC_URL": public_url,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_https_answers_carry_hsts(tmp_path):
    assert _hsts("https://connectors.example.com", tmp_path, secure=True).startswith("max-age=")


def test_plain_http_deployments_send_none(tmp_path):
    assert _hsts("http://connectors.example.com", tmp_path, secure=False) == "none"
