"""Evaluate a parsed query (connectors.quickbooks.query) against stored objects."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..query import DEFAULT_MAX_RESULTS, Condition, Query

_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")
_MISSING = object()


def field_value(obj: dict[str, Any], path: str) -> Any:
    """Resolve `A.B.C` case-insensitively; a reference (`{"value": ...}`) compares by its value."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return _MISSING
        key = next((k for k in current if k.lower() == part.lower()), None)
        if key is None:
            return _MISSING
        current = current[key]
    if isinstance(current, dict) and "value" in current:
        current = current["value"]
    return current


def _as_datetime(text: str) -> datetime | None:
    if not _DATE_PREFIX.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def _comparable_pair(stored: Any, literal: Any) -> tuple[Any, Any] | None:
    """Bring both sides to one type: dates, numbers, booleans or case-folded text."""
    if isinstance(stored, bool) or isinstance(literal, bool):
        if isinstance(stored, bool) and isinstance(literal, bool):
            return stored, literal
        if isinstance(stored, bool) and isinstance(literal, str):
            return stored, literal.lower() == "true"
        return None
    if isinstance(stored, str) and isinstance(literal, str):
        stored_moment, literal_moment = _as_datetime(stored), _as_datetime(literal)
        if stored_moment and literal_moment:
            return stored_moment, literal_moment
    stored_number, literal_number = _as_decimal(stored), _as_decimal(literal)
    if stored_number is not None and literal_number is not None:
        return stored_number, literal_number
    if isinstance(stored, str | int | float) and isinstance(literal, str | int | float):
        return str(stored).casefold(), str(literal).casefold()
    return None


def _like(stored: Any, pattern: str) -> bool:
    if not isinstance(stored, str):
        return False
    regex = ".*".join(re.escape(part) for part in pattern.split("%"))
    return re.fullmatch(regex, stored, flags=re.IGNORECASE | re.DOTALL) is not None


def _compare(stored: Any, operator: str, literal: Any) -> bool:
    pair = _comparable_pair(stored, literal)
    if pair is None:
        return False
    left, right = pair
    if operator == "=":
        return left == right
    try:
        if operator == "<":
            return left < right
        if operator == ">":
            return left > right
        if operator == "<=":
            return left <= right
        if operator == ">=":
            return left >= right
    except TypeError:
        return False
    raise ValueError(f"unknown operator {operator}")


def matches(obj: dict[str, Any], condition: Condition) -> bool:
    """Whether one object satisfies one condition (a missing field never matches)."""
    stored = field_value(obj, condition.field)
    if stored is _MISSING or stored is None:
        return False
    if condition.operator == "IN":
        return any(_compare(stored, "=", value) for value in condition.value)  # type: ignore[union-attr]
    if condition.operator == "LIKE":
        return _like(stored, condition.value)  # type: ignore[arg-type]
    return _compare(stored, condition.operator, condition.value)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Order numbers, then dates, then text, with missing values last."""
    if value is _MISSING or value is None:
        return (9, 0)
    if isinstance(value, bool):
        return (0, Decimal(int(value)))
    number = _as_decimal(value)
    if number is not None:
        return (0, number)
    if isinstance(value, str):
        moment = _as_datetime(value)
        if moment is not None:
            return (1, moment)
        return (2, value.casefold())
    return (3, str(value))


def run_query(query: Query, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The `QueryResponse` member of Intuit's answer to `query` over `objects` (in Id order)."""
    selected = [obj for obj in objects if all(matches(obj, c) for c in query.conditions)]
    if query.count:
        return {"totalCount": len(selected)}
    # Stable sorts applied from the last key to the first give a multi-key order; objects
    # without the field go last in either direction.
    for order in reversed(query.order_by):
        keyed = [(_sort_key(field_value(obj, order.field)), obj) for obj in selected]
        present = [pair for pair in keyed if pair[0][0] != 9]
        present.sort(key=lambda pair: pair[0], reverse=order.descending)
        selected = [obj for _, obj in present] + [obj for key, obj in keyed if key[0] == 9]
    start = query.start_position or 1
    page_size = query.max_results or DEFAULT_MAX_RESULTS
    page = selected[start - 1 : start - 1 + page_size]
    if not page:
        return {}
    return {query.entity: page, "startPosition": start, "maxResults": len(page)}
