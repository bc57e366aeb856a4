"""Scopes a tool needs beyond the platform's own, checked before a call reaches the kind.

A kind's tool says which scopes its calls need (``connectors.base.requires_scope``); a
``tools/call`` of it with a token that lacks one is answered HTTP 403 with the
``insufficient_scope`` challenge (MCP authorization, "Scope challenge handling"), which names the
scopes the call needs so the client re-authorizes with them (step-up) and retries. The answer
has to be an HTTP status, so the check reads the request body before the SDK does, and only
for kinds that have such tools: every other request is passed through untouched.

tools/list is not filtered by scope: a tool the token cannot call yet is listed, with the
scopes it needs in its ``_meta.securitySchemes``, so a client can discover it and step up.
"""

from __future__ import annotations

import json

from connectors.base import declared_tools, scopes_needed
from gateway.body import Receive, read_body


class ToolScopes:
    """The scopes each kind's tools need, read once from the kind's declared tools."""

    def __init__(self) -> None:
        self._needs: dict[str, dict[str, frozenset[str]]] = {}

    async def of(self, kind_slug: str) -> dict[str, frozenset[str]]:
        """Tool name -> the scopes its calls need, for the tools that need any."""
        if kind_slug not in self._needs:
            needs = {t.name: scopes_needed(t.meta) for t in await declared_tools(kind_slug)}
            self._needs[kind_slug] = {name: needed for name, needed in needs.items() if needed}
        return self._needs[kind_slug]


async def missing_scopes(
    receive: Receive, needs: dict[str, frozenset[str]], token_scope: str | None
) -> tuple[Receive, frozenset[str]]:
    """Read the request body; return a receive that replays it, and the scopes the calls in it
    need that ``token_scope`` lacks (none when the body is not a tools/call of such a tool:
    anything malformed is left for the SDK to answer)."""
    replay, body = await read_body(receive)
    try:
        payload = json.loads(body)
    except ValueError:
        return replay, frozenset()
    granted = set((token_scope or "").split())
    missing: set[str] = set()
    for request in payload if isinstance(payload, list) else [payload]:
        if not isinstance(request, dict) or request.get("method") != "tools/call":
            continue
        params = request.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if isinstance(name, str):
            missing |= needs.get(name, frozenset()) - granted
    return replay, frozenset(missing)
