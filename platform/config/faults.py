"""Outages of a backing service, recognised in one place so every face can answer them alike.

A request that fails because the database, the broker or the cache cannot be reached is not a
bug: it is answered ``503 Service Unavailable`` with ``Retry-After`` in the shape of its endpoint
(the gateway's JSON-RPC error, the OAuth endpoints' ``temporarily_unavailable``, the API's
``{"detail": ...}``, the styled page), and the process recovers by itself once the service is
back (the database pool checks each connection before handing it out).
"""

import django.db
import kombu.exceptions
import psycopg
import redis.exceptions

# Seconds a client is asked to wait before trying again (a restart of the database takes a few).
RETRY_AFTER = 5

_DATABASE = (django.db.OperationalError, django.db.InterfaceError, psycopg.OperationalError)
_REDIS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def unavailable(exc: BaseException | None) -> str | None:
    """Which backing service ``exc`` (or an exception it was raised from) says is unreachable:
    "database", "broker" (Celery could not publish) or "redis" (the cache); None for anything
    else, which stays a bug (500)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, _DATABASE):
            return "database"
        if isinstance(exc, kombu.exceptions.OperationalError):
            return "broker"
        if isinstance(exc, _REDIS):
            return "redis"
        exc = exc.__cause__ or exc.__context__
    return None
