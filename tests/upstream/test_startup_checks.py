"""The start-up checks: production refuses to run with unreadable encryption keys, stored tokens
no configured key decrypts, or no mail server. `migrate` runs them (compose then starts nothing)
and so does web's start (the health check then fails)."""

import sqlite3
import subprocess
import sys

import anyio
import pytest
from cryptography.fernet import Fernet
from django.core import checks

from config.asgi import PlatformApplication
from connectors.base import UpstreamTokens
from tests.deploy.deployment import ROOT, Deployment
from upstream.services import upstream_connection_store

SMTP = "django.core.mail.backends.smtp.EmailBackend"


def errors(databases=None) -> dict[str, str]:
    found = checks.run_checks(databases=databases)
    return {m.id: m.msg for m in found if m.is_serious()}


@pytest.mark.parametrize(
    "keys",
    [
        ["not-a-fernet-key"],
        [Fernet.generate_key().decode(), "Zm9v"],  # a good key, then a truncated one
        [Fernet.generate_key().decode()[:-2]],
        [],
    ],
)
def test_malformed_encryption_keys_are_an_error(settings, keys):
    settings.UPSTREAM_ENCRYPTION_KEYS = keys
    assert "upstream.E001" in errors()


def test_good_keys_pass(settings):
    settings.UPSTREAM_ENCRYPTION_KEYS = [Fernet.generate_key().decode() for _ in range(2)]
    assert "upstream.E001" not in errors()


def test_production_without_a_mail_server_is_an_error(settings):
    settings.EMBEDDED = False
    settings.EMAIL_BACKEND = SMTP
    settings.EMAIL_HOST = ""
    assert "EMAIL_HOST" in errors()["upstream.E003"]
    settings.EMAIL_HOST = "smtp.example.com"
    assert "upstream.E003" not in errors()
    # Another backend, chosen on purpose, needs no SMTP server.
    settings.EMAIL_HOST = ""
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert "upstream.E003" not in errors()


def test_stored_tokens_no_key_decrypts_are_an_error(acme, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.UPSTREAM_ENCRYPTION_KEYS = [old]
    upstream_connection_store(
        connector=acme["connector"],
        user=None,
        provider="quickbooks",
        tokens=UpstreamTokens(access_token="a", refresh_token="r", expires_in=3600),
    )
    assert "upstream.E002" not in errors(databases=["default"])
    # The old key dropped before re-encrypting (or a restore with the new keys only).
    settings.UPSTREAM_ENCRYPTION_KEYS = [new]
    assert "1 of 1 stored upstream connections" in errors(databases=["default"])["upstream.E002"]
    assert "upstream.E002" not in errors(), "database checks run only where asked (migrate)"
    settings.UPSTREAM_ENCRYPTION_KEYS = [new, old]
    assert "upstream.E002" not in errors(databases=["default"])


def test_web_refuses_to_start_on_a_failing_check(settings):
    settings.UPSTREAM_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    sent = []

    async def lifespan():
        messages = iter([{"type": "lifespan.startup"}])

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message)

        await PlatformApplication()._lifespan(receive, send)

    anyio.run(lifespan)
    [failed] = sent
    assert failed["type"] == "lifespan.startup.failed"
    assert "upstream.E001" in failed["message"]


def test_migrate_refuses_bad_keys_and_no_mail_server(tmp_path):
    """`docker compose run migrate` with the compose environment, on SQLite here."""
    good = {
        "PUBLIC_URL": "https://connectors.example.com",
        "SECRET_KEY": "s" * 50,
        "UPSTREAM_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "EMAIL_HOST": "smtp.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'platform.sqlite3'}",
    }
    cases = {
        "upstream.E001": {**good, "UPSTREAM_ENCRYPTION_KEYS": "ok-looking,but-not-keys"},
        "upstream.E003": {**good, "EMAIL_HOST": ""},
    }
    for expected, dotenv in cases.items():
        (tmp_path / expected).mkdir()
        deployment = Deployment(tmp_path / expected, dotenv, port=0)
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=deployment.environment("migrate"),
            capture_output=True,
            text=True,
        )
        assert result.returncode != 0 and expected in result.stderr, result.stderr[-2000:]
        database = tmp_path / "platform.sqlite3"
        if database.exists():
            with sqlite3.connect(database) as db:
                tables = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            assert tables == [], "migrated despite the error"
