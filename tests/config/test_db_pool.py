"""The PostgreSQL pool's health check (config.postgresql): no round trip to hand out an idle
connection, and a connection the server ended is still never handed out."""

import time

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from tests.support.sql import postgres_only

pytestmark = [
    postgres_only("the pool is PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    connection.close()  # back to the pool
    return pid


@pytest.fixture
def round_trip_checks(monkeypatch):
    """Every health check that asks the server (psycopg_pool's own check)."""
    made = []
    real = ConnectionPool.check_connection

    def counted(conn):
        made.append(conn)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    return made


def test_handing_out_an_idle_connection_asks_the_kernel_not_the_server(round_trip_checks):
    assert connection.pool is not None
    pids = {_backend_pid() for _ in range(20)}
    assert len(pids) <= connection.pool.max_size  # the same few connections, reused
    assert round_trip_checks == []


def test_a_connection_the_server_ended_is_replaced_before_anyone_uses_it(round_trip_checks):
    _backend_pid()
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        own = admin.execute("SELECT pg_backend_pid()").fetchone()[0]
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> %s",
            [own],
        ).fetchall()
        assert rows and all(ended for ended, _ in rows)
        deadline = time.monotonic() + 10
        # Those sessions (a gateway of an earlier test may open new ones meanwhile: its lease's).
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [[pid for _, pid in rows]]
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the sessions did not end"
            time.sleep(0.05)
    _backend_pid()  # no error: the dead connection was found out at checkout
    assert round_trip_checks, "the ended session was not checked with the server"
