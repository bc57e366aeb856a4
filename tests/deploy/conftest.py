"""Fixtures of the deployment tests: a fresh database and Redis databases, as compose's
bundled services start empty; or private servers of the test's own."""

from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from tests.deploy.deployment import REDIS_URL, scratch_database
from tests.support.services import PrivatePostgres, PrivateRedis


@pytest.fixture
def compose_database():
    """A new PostgreSQL database, as the bundled postgres service starts empty; dropped after."""
    with scratch_database() as url:
        yield url


@pytest.fixture
def compose_redis():
    """Redis databases 3 (broker) and 4 (cache), which the other tests never use; emptied."""
    base = urlsplit(REDIS_URL)
    urls = [urlunsplit(base._replace(path=f"/{db}")) for db in (3, 4)]
    for url in urls:
        redis.Redis.from_url(url).flushdb()
    yield urls
    for url in urls:
        redis.Redis.from_url(url).flushdb()


@pytest.fixture
def private_services():
    """A private PostgreSQL (with an empty ``platform`` database) and Redis of this test's own,
    which it may stop and start; the shared servers are never touched."""
    with PrivatePostgres() as postgres, PrivateRedis() as redis_server:
        with psycopg.connect(postgres.url, autocommit=True) as admin:
            admin.execute("CREATE DATABASE platform")
        yield postgres, redis_server
