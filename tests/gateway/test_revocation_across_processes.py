"""The bearer check's per-process state (compiled SQL, pooled or kept connections) never
delays a refusal: a revoked token, a disabled connector or a removed member is refused on the
very next request, by this process and by another platform process on the same database."""

import os
import subprocess
import sys
import time

import httpx
import pytest
from django.db import connection

from authserver.services import mcp_tokens_revoke
from tenants.models import Connector, Membership
from tests.support.flow import OAuthClient, mcp_post
from tests.support.live import free_port
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"text": "hi"}},
}


def _database_url() -> str:
    """The test database, as a URL another process can open."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{user}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def second_process(live_url, tmp_path):
    """Another platform web process (uvicorn) on the test database; yields its base URL."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "DATABASE_URL": _database_url(),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "VAR_DIR": str(tmp_path),
        "EXTRA_CONNECTOR_KINDS": "tests.support.kinds.echo_kind",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("REDIS_URL", "CACHE_REDIS_URL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port)]
    log = (tmp_path / "second.log").open("w")
    process = subprocess.Popen(
        [*command, "--no-access-log", "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            assert process.poll() is None, (tmp_path / "second.log").read_text()
            assert time.monotonic() < deadline, "the second process did not come up"
            try:
                httpx.get(f"{url}/healthz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _statuses(urls: list[str], token: str) -> list[int]:
    return [mcp_post(url, token, ECHO).status_code for url in urls]


def test_refusals_bite_on_the_next_request_in_every_process(live_url, second_process, acme):
    path = "/t/acme/echo/mcp"
    urls = [live_url + path, second_process + path]
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)["access_token"]
    # Each process has served the token (its SQL compiled, its connection kept or pooled).
    for _ in range(3):
        assert _statuses(urls, token) == [200, 200]

    Connector.objects.filter(pk=acme["connector"].pk).update(enabled=False)
    assert _statuses(urls, token) == [403, 403]
    Connector.objects.filter(pk=acme["connector"].pk).update(enabled=True)
    assert _statuses(urls, token) == [200, 200]

    assert mcp_tokens_revoke(connector_id=acme["connector"].pk) == 1
    responses = [mcp_post(url, token, ECHO) for url in urls]
    assert [r.status_code for r in responses] == [401, 401]
    assert all('error="invalid_token"' in r.headers["www-authenticate"] for r in responses)

    token = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)["access_token"]
    assert _statuses(urls, token) == [200, 200]
    Membership.objects.filter(tenant=acme["tenant"], user__username="bob").delete()
    assert all(status in (401, 403) for status in _statuses(urls, token))
