"""Outages of a backing service, recognised in one place so every face can answer them alike.

A request that fails because the database, the broker or the cache cannot be reached is not a
bug: it is answered ``503 Service Unavailable`` with ``Retry-After`` in the shape of its endpoint
(the gateway's JSON-RPC error, the OAuth endpoints' ``temporarily_unavailable``, the API's
``{"detail": ...}``, the styled page), and the process recovers by itself once the service is
back (the database pool checks each connection before handing it out).
"""

import sys

import django.db

# Seconds a client is asked to wait before trying again (a restart of the database takes a few).
RETRY_AFTER = 5

# Which exception classes say which service is down, by the module that defines them. The
# client libraries are looked up in sys.modules instead of imported: an exception of a library
# that was never imported cannot occur, and importing redis, psycopg and kombu here would load
# them (about 25 MB) into every web process, also one on SQLite without Redis (the embedded
# default), where nothing else uses them.
_SERVICES = {
    "database": {"psycopg": ("OperationalError",)},
    "broker": {"kombu.exceptions": ("OperationalError",)},
    "redis": {"redis.exceptions": ("ConnectionError", "TimeoutError")},
}


def _loaded(service: str) -> tuple[type[BaseException], ...]:
    """The exception classes of ``service`` from the client libraries imported so far."""
    found = []
    for module_name, names in _SERVICES[service].items():
        if (module := sys.modules.get(module_name)) is not None:
            found.extend(getattr(module, name) for name in names)
    return tuple(found)


def unavailable(exc: BaseException | None) -> str | None:
    """Which backing service ``exc`` (or an exception it was raised from) says is unreachable:
    "database", "broker" (Celery could not publish) or "redis" (the cache); None for anything
    else, which stays a bug (500)."""
    database = (django.db.OperationalError, django.db.InterfaceError, *_loaded("database"))
    broker, cache = _loaded("broker"), _loaded("redis")
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, database):
            return "database"
        if isinstance(exc, broker):
            return "broker"
        if isinstance(exc, cache):
            return "redis"
        exc = exc.__cause__ or exc.__context__
    return None
