"""Scopes a tool needs beyond the platform's own, checked before a call reaches the kind.

A kind's tool says which scopes its calls need (``connectors.base.requires_scope``); a
``tools/call`` of it with a token that lacks one is answered HTTP 403 with the
``insufficient_scope`` challenge (MCP authorization, "Scope challenge handling"), which names the
scopes the call needs so the client re-authorizes with them (step-up) and retries. The answer
has to be an HTTP status, so the check looks at the request before the SDK does (the gateway
reads and parses the body once), and only for kinds that have such tools.

A tool the caller may not call anyway (the connector's tool policy, or the write gate of a
read-only connector) is not challenged: it refuses itself, and nobody is asked to consent to a
scope that would not help.

tools/list is not filtered by scope: a tool the token cannot call yet is listed, with the
scopes it needs in its ``_meta.securitySchemes``, so a client can discover it and step up.
"""

from __future__ import annotations

from connectors.base import WRITES_SETTING, declared_tools, get_kind, scopes_needed
from connectors.write_gate import WriteGatedServer
from gateway.bearer import BearerCheck
from tenants.policy import tool_refusal


class ToolScopes:
    """The scopes each kind's tools need, read once from the kind's declared tools."""

    def __init__(self) -> None:
        # kind -> tool name -> (the scopes it needs, whether the write gate may hide it)
        self._needs: dict[str, dict[str, tuple[frozenset[str], bool]]] = {}

    async def _of(self, kind_slug: str) -> dict[str, tuple[frozenset[str], bool]]:
        if kind_slug not in self._needs:
            gated = isinstance(get_kind(kind_slug).server, WriteGatedServer)
            self._needs[kind_slug] = {
                t.name: (
                    scopes_needed(t.meta),
                    gated and not (t.annotations and t.annotations.read_only_hint),
                )
                for t in await declared_tools(kind_slug)
                if scopes_needed(t.meta)
            }
        return self._needs[kind_slug]

    async def callable_by(self, check: BearerCheck) -> dict[str, frozenset[str]]:
        """Tool name -> the scopes its calls need, for the tools that need any and that the
        caller of ``check`` may otherwise call here."""
        writes = (check.connector_settings or {}).get(WRITES_SETTING) is True
        return {
            name: needed
            for name, (needed, gated) in (await self._of(check.connector_kind)).items()
            if (writes or not gated)
            and tool_refusal(check.tool_policy, role=check.member_role, tool=name) is None
        }


def missing_scopes(
    payload, needs: dict[str, frozenset[str]], token_scope: str | None
) -> frozenset[str]:
    """The scopes the calls in ``payload`` (the parsed request body) need that ``token_scope``
    lacks: none when it is not a tools/call of such a tool (anything malformed is left for the
    SDK to answer)."""
    granted = set((token_scope or "").split())
    missing: set[str] = set()
    for request in payload if isinstance(payload, list) else [payload]:
        if not isinstance(request, dict) or request.get("method") != "tools/call":
            continue
        params = request.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if isinstance(name, str):
            missing |= needs.get(name, frozenset()) - granted
    return frozenset(missing)
