"""Fixtures of the deployment tests: a fresh database and Redis databases, as compose's
bundled services start empty."""

from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.deploy.deployment import REDIS_URL, scratch_database


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
