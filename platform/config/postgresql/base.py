"""Django's PostgreSQL backend, with a pool whose health check costs no round trip.

Django builds its psycopg pool with ``check=ConnectionPool.check_connection`` when
``CONN_HEALTH_CHECKS`` is on: an empty query, i.e. one more round trip, on every checkout. The
gateway checks a connection out for each bearer check (config.db), so that was as many round
trips to PostgreSQL as the check itself (bench/gateway_calls.py). Here a checkout asks the
kernel instead: an idle connection has nothing to read unless the server sent something,
which for a pooled connection means it ended the session (a restart, an admin's
``pg_terminate_backend``) or, rarely, a notice. Only then is the round trip made, and a dead
connection is discarded and replaced before anyone uses it, as before.
"""

import select

from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base


def heard_from_server(connection) -> bool:
    """Whether the server sent anything to the idle psycopg ``connection`` (asked of the
    kernel, no round trip): for an idle connection, most likely that it ended the session."""
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def idle_connection_check(connection) -> None:
    """Raise if the pooled ``connection`` cannot be used (psycopg_pool's ``check``)."""
    from psycopg import OperationalError
    from psycopg_pool import ConnectionPool

    if connection.closed or connection.broken:
        raise OperationalError("the connection is closed")
    if heard_from_server(connection):
        ConnectionPool.check_connection(connection)  # raises if the server ended the session


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not options:
            return None
        if self.alias not in self._connection_pools:
            from psycopg_pool import ConnectionPool

            kwargs = self.get_connection_params()
            kwargs["autocommit"] = True  # as Django's pool: Django sets it properly later on
            pool = ConnectionPool(
                kwargs=kwargs,
                open=False,
                configure=self._configure_connection,
                check=idle_connection_check if self.settings_dict["CONN_HEALTH_CHECKS"] else None,
                **({} if options is True else options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
