"""config.faults names the backing service an exception says is down, from the client libraries
it meets, without importing them itself (tests/config/test_web_imports.py)."""

import django.db
import kombu.exceptions
import psycopg
import pytest
import redis.exceptions

from config.faults import unavailable


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise RuntimeError("while serving") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "service"),
    [
        (django.db.OperationalError("gone"), "database"),
        (django.db.InterfaceError("closed"), "database"),
        (psycopg.OperationalError("connection refused"), "database"),
        (kombu.exceptions.OperationalError("broker"), "broker"),
        (redis.exceptions.ConnectionError("refused"), "redis"),
        (redis.exceptions.TimeoutError("slow"), "redis"),
        (ValueError("a bug"), None),
        (None, None),
    ],
)
def test_unavailable_names_the_service_an_exception_or_its_cause_blames(exc, service):
    assert unavailable(exc) == service
    if exc is not None:
        assert unavailable(_raised_from(exc)) == service
