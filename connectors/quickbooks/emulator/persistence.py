"""The emulator's memory on disk, so a restarted emulator still knows its grants and books.

Intuit never forgets a grant because our process restarted; an emulator that did would make every
stored connection die on the next refresh (``invalid_grant``). What is kept: companies (their
objects and books), authorization codes, grants with their live refresh tokens, access tokens,
and replayable ``requestid`` answers. What is not: faults, counters, rate windows, the request
log and run-time settings, which belong to one run.

One JSON document, written atomically (a temporary file renamed over the old one) before the
answer of the request that changed it leaves, so a client never holds a token the file lacks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .company import Company, OpeningBalance
from .tokens import AccessTokenRecord, AuthorizationCode, Grant

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_RECORDS = {cls.__name__: cls for cls in (Company, OpeningBalance, AuthorizationCode, Grant)}


def _encode(value: Any) -> Any:
    """JSON for the state's values; the types JSON lacks carry a one-key tag."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, set):
        return {"$set": sorted(_encode(v) for v in value)}
    if dataclasses.is_dataclass(value) and type(value).__name__ in _RECORDS:
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$record": type(value).__name__, "fields": fields}
    if isinstance(value, dict):
        return {key: _encode(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$record" in value:
        fields = {key: _decode(v) for key, v in value["fields"].items()}
        return _RECORDS[value["$record"]](**fields)
    if len(value) == 1:
        ((tag, raw),) = value.items()
        if tag == "$datetime":
            return datetime.fromisoformat(raw)
        if tag == "$date":
            return date.fromisoformat(raw)
        if tag == "$decimal":
            return Decimal(raw)
        if tag == "$tuple":
            return tuple(_decode(v) for v in raw)
        if tag == "$set":
            return {_decode(v) for v in raw}
    return {key: _decode(v) for key, v in value.items()}


def state_document(emulator) -> dict[str, Any]:
    """What survives a restart, as JSON (the caller holds the emulator's lock)."""
    tokens = emulator.tokens
    return {
        "version": FORMAT_VERSION,
        "companies": _encode(emulator.companies),
        "codes": _encode(tokens.codes),
        "grants": _encode(tokens.grants),
        "refresh_index": tokens.refresh_index,
        "access_tokens": {
            value: [record.grant_id, _encode(record.expires_at)]
            for value, record in tokens.access_tokens.items()
        },
        "idempotent_responses": [
            [realm, request_id, status, payload]
            for (realm, request_id), (status, payload) in emulator.idempotent_responses.items()
        ],
    }


def state_restore(emulator, document: dict[str, Any]) -> None:
    """Put a saved document back into a freshly reset emulator (the caller holds its lock)."""
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown state format {document.get('version')!r}")
    tokens = emulator.tokens
    emulator.companies = _decode(document["companies"])
    tokens.codes = _decode(document["codes"])
    tokens.grants = _decode(document["grants"])
    tokens.refresh_index = dict(document["refresh_index"])
    tokens.access_tokens = {
        value: AccessTokenRecord(value, grant_id, _decode(expires_at))
        for value, (grant_id, expires_at) in document["access_tokens"].items()
    }
    emulator.idempotent_responses = {
        (realm, request_id): (status, payload)
        for realm, request_id, status, payload in document["idempotent_responses"]
    }


def state_write(path: Path, document: dict[str, Any]) -> None:
    """Replace the file at ``path`` with ``document`` in one step (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(document, file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)  # live tokens
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def state_read(path: Path) -> dict[str, Any] | None:
    """The saved document, or None when there is none. An unreadable file is moved aside (and
    logged) rather than refused: the emulator then starts empty, as Intuit would look to a
    platform whose grants it lost, and the platform's start-up check finds them dead."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        state_set_aside(path, exc)
        return None


def state_set_aside(path: Path, problem: Exception) -> None:
    """Keep an unusable state file for a person to look at, out of the way of the next save."""
    aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
    path.replace(aside)
    log.warning("emulator state %s not restored (%s); moved to %s", path, problem, aside)
