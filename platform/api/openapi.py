"""The API's OpenAPI annotations, applied only when a schema is generated.

drf_spectacular's ``extend_schema`` builds its schema class when it decorates a view, and that
imports drf_spectacular's schema machinery, DRF's test module, ``django.test`` and ``unittest``:
about 2.7 MB of resident memory in every web process, which only the OpenAPI document needs
(bench/web_memory.py, issue 17). Here a view's annotation is recorded when the view is defined
and handed to drf_spectacular once the schema class loads (``AutoSchema``, the
DEFAULT_SCHEMA_CLASS: DRF resolves it for every endpoint before it reads any annotation).
"""

from collections.abc import Callable
from typing import Any

_pending: list[tuple[Callable, dict[str, Any]]] = []
_applied = False


def extend_schema(**kwargs: Any) -> Callable[[Callable], Callable]:
    """drf_spectacular's ``extend_schema`` for a view's method, applied when schemas load."""

    def annotate(method: Callable) -> Callable:
        if _applied:
            return _drf_spectacular_extend_schema(method, kwargs)
        _pending.append((method, kwargs))
        return method

    return annotate


def annotations_apply() -> None:
    """Hand every recorded annotation to drf_spectacular (once the schema class is loaded)."""
    global _applied
    _applied = True
    for method, kwargs in _pending:  # in the order written: stacked annotations apply inner first
        _drf_spectacular_extend_schema(method, kwargs)
    _pending.clear()


def _drf_spectacular_extend_schema(method: Callable, kwargs: dict[str, Any]) -> Callable:
    from drf_spectacular.utils import extend_schema as extend

    return extend(**kwargs)(method)
