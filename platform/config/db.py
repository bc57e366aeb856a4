"""Database work outside Django's request cycle (the MCP gateway, its tools, the call counter).

Django hands a request's connection back when the request finishes (``request_finished``).
MCP requests never pass through it, and their ORM work runs in the event loop's worker
threads, so each unit of work does the same itself: its connection goes back to the pool (or
is closed, without one) when it ends, instead of staying checked out by an idle thread.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


def db_sync_to_async(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``sync_to_async(func, thread_sensitive=False)`` that releases its connection after."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)
