"""Web under load with the production settings on PostgreSQL: the number of server connections
stays bounded by the pool, however many requests arrive and however they are served.

Web runs as compose runs it (two uvicorn workers, production settings, a fresh database) but
with a small pool (DB_POOL_SIZE=3), so the bound is tight: at most 2 x (3 + 2) backends, the
two being the gateway's own connections for bearer checks and their lease (gateway.bearer,
gateway.loop_statement). Thousands
of requests at concurrency 32 mix the three ways the platform reaches the database: Django
views (readiness and the protected-resource metadata, each request in a thread of its own), and
MCP tools/call through the gateway (the bearer check on the gateway's connection, or in the
event loop's worker threads until that connection is open). Before
the pool (CONN_MAX_AGE=60 under ASGI) every Django request's thread left a connection open:
hundreds of requests took PostgreSQL from a handful of connections to its max_connections.
"""

import asyncio
import os
import secrets
import threading
import time

import httpx
from cryptography.fernet import Fernet

from tests.deploy.deployment import (
    REDIS_URL,
    TOKEN_SETUP,
    Deployment,
    needs_postgres,
    needs_redis,
    server_connections,
    wait_healthy,
)
from tests.support.live import free_port

pytestmark = [needs_postgres, needs_redis]

WORKERS = 2
POOL = 3
REQUESTS = 1000  # per round; two rounds
CONCURRENCY = 32
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami"}}


class PeakConnections:
    """Samples the database's server connections in a thread until stopped; keeps the peak."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, server_connections(self.database_url))
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


async def load(base: str, mcp_url: str, token: str, metadata_url: str) -> dict[int, int]:
    """REQUESTS requests, CONCURRENCY at a time, a third each of readiness, metadata and
    tools/call; returns how many got each status."""
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(REQUESTS):
        queue.put_nowait(number)
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }

    async def client():
        async with httpx.AsyncClient(timeout=60) as http:
            while not queue.empty():
                number = queue.get_nowait()
                if number % 3 == 0:
                    response = await http.get(f"{base}/readyz")
                elif number % 3 == 1:
                    response = await http.get(metadata_url)
                else:
                    response = await http.post(mcp_url, json=CALL, headers=headers)
                    assert '"isError":false' in response.text.replace(" ", ""), response.text
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return statuses


def test_server_connections_stay_bounded_under_load(tmp_path, compose_database):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    dotenv = {
        "PUBLIC_URL": base,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "UPSTREAM_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": compose_database,
        "REDIS_URL": REDIS_URL,
        "CACHE_REDIS_URL": os.environ.get("CACHE_REDIS_URL", REDIS_URL),
        "WEB_CONCURRENCY": str(WORKERS),
        "DB_POOL_SIZE": str(POOL),
        "EMAIL_HOST": "127.0.0.1",  # never used here; production refuses to start without one
        "EXTRA_CONNECTOR_KINDS": "tests.support.kinds.echo_kind",
        "LOG_LEVEL": "WARNING",
    }
    deployment = Deployment(tmp_path, dotenv, port)
    deployment.run("migrate")
    token = secrets.token_urlsafe(32)
    created = deployment.run("web", ["python", "manage.py", "shell", "-c", TOKEN_SETUP % token])
    mcp_url = created.strip().splitlines()[-1]
    metadata_url = f"{base}/.well-known/oauth-protected-resource/t/acme/echo/mcp"

    deployment.start("web")
    try:
        wait_healthy(deployment, base, timeout=180)  # a busy CI machine starts slowly
        bound = WORKERS * (POOL + 2)  # each process: its pool and the gateway's two

        for _ in range(2):
            with PeakConnections(compose_database) as sampled:
                statuses = asyncio.run(load(base, mcp_url, token, metadata_url))
            assert statuses == {200: REQUESTS}, statuses
            assert 0 < sampled.peak <= bound, f"{sampled.peak} server connections for {bound}"
            deployment.alive()
        time.sleep(1)
        assert server_connections(compose_database) <= bound
    finally:
        codes = deployment.stop()
    assert codes == {"web": 0}, deployment.logs()
