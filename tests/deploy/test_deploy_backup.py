"""Backup and restore round trip, outside Docker: `deploy/backup.py --local` runs the same
pg_dump, pg_restore and manage.py commands it runs in the containers, against scratch
PostgreSQL databases, with the production settings compose gives the platform.

It follows the README's key rules: a dump is readable with the keys it was made under, so a
dump made before a key rotation restores only while the retired key is still listed (after the
current ones); with the new key alone the platform refuses to start, naming the problem.
"""

import os
import shutil
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tests.deploy.deployment import (
    REDIS_URL,
    ROOT,
    Deployment,
    needs_postgres,
    needs_redis,
    scratch_database,
)

pytestmark = [
    needs_postgres,
    needs_redis,
    pytest.mark.skipif(not shutil.which("pg_dump"), reason="needs pg_dump (postgresql-client)"),
]

BACKUP = ROOT / "deploy" / "backup.py"
STORE = """
from connectors.base import UpstreamTokens
from tenants.models import Connector
from tenants.services import connector_create, tenant_create
from upstream.services import upstream_connection_store
tenant = tenant_create(slug="acme", name="Acme")
connector = connector_create(tenant=tenant, kind="quickbooks", slug="books", mode="shared")
upstream_connection_store(connector=connector, user=None, provider="quickbooks",
    tokens=UpstreamTokens(access_token="access-1", refresh_token="refresh-1", expires_in=3600))
"""
READ = """
from config import crypto
from upstream.models import UpstreamConnection
print(crypto.decrypt(UpstreamConnection.objects.get().refresh_token_encrypted))
"""


def tool(deployment, database_url: str, keys: list[str], *arguments: str):
    """``deploy/backup.py --local ...`` with the deployment's environment and these keys."""
    env = {
        **deployment.environment("migrate"),
        "DATABASE_URL": database_url,
        "UPSTREAM_ENCRYPTION_KEYS": ",".join(keys),
    }
    env_file = deployment.tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in deployment.dotenv.items()))
    argv = [sys.executable, str(BACKUP), "--local", "--env-file", str(env_file), *arguments]
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def manage(deployment, database_url: str, keys: list[str], *arguments: str):
    env = {
        **deployment.environment("migrate"),
        "DATABASE_URL": database_url,
        "UPSTREAM_ENCRYPTION_KEYS": ",".join(keys),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_backup_restores_and_tokens_decrypt_with_the_keys_it_was_made_under(
    tmp_path, compose_database
):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    dotenv = {
        "PUBLIC_URL": "https://connectors.example.com",
        "SECRET_KEY": "s" * 50,
        "UPSTREAM_ENCRYPTION_KEYS": old,
        "EMAIL_HOST": "127.0.0.1",
        "DATABASE_URL": compose_database,
        "REDIS_URL": REDIS_URL,
        "CACHE_REDIS_URL": os.environ.get("CACHE_REDIS_URL", REDIS_URL),
    }
    deployment = Deployment(tmp_path, dotenv, port=0)
    deployment.run("migrate")
    assert manage(deployment, compose_database, [old], "shell", "-c", STORE).returncode == 0

    # The backup: a dump, the whole .env, checked by restoring it into a scratch database.
    made = tool(deployment, compose_database, [old], "backup", "--dir", str(tmp_path / "b"))
    assert made.returncode == 0, made.stderr
    assert "every stored upstream token decrypts" in made.stdout
    folder = tmp_path / "b" / os.listdir(tmp_path / "b")[0]
    assert sorted(os.listdir(folder)) == ["env", "platform.dump"]
    assert f"UPSTREAM_ENCRYPTION_KEYS={old}" in (folder / "env").read_text()
    assert oct((folder / "platform.dump").stat().st_mode & 0o777) == "0o600"
    dump = folder / "platform.dump"

    # Rotation, as the README says: the new key first, re-encrypt, then drop the old key.
    result = manage(deployment, compose_database, [new, old], "upstream_reencrypt")
    assert result.returncode == 0, result.stderr
    read = manage(deployment, compose_database, [new], "shell", "-c", READ)
    assert read.stdout.splitlines()[-1] == "refresh-1", read.stderr

    # The pre-rotation dump with the new key alone: the check and the restore refuse it.
    refused = tool(deployment, compose_database, [new], "check", str(dump))
    assert refused.returncode != 0 and "upstream.E002" in refused.stderr, refused.stderr
    with scratch_database("restore") as restored:
        refused = tool(deployment, restored, [new], "restore", str(dump))
        assert refused.returncode != 0 and "upstream.E002" in refused.stderr, refused.stderr

    # With the retired key kept after the current one: restored, migrated, tokens decrypt.
    with scratch_database("restore") as restored:
        result = tool(deployment, restored, [new, old], "restore", str(dump))
        assert result.returncode == 0, result.stderr
        read = manage(deployment, restored, [new, old], "shell", "-c", READ)
        assert read.stdout.splitlines()[-1] == "refresh-1", read.stderr
