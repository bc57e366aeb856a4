"""Tool policies: per connector, which tools are off and which only the tenant's admins may call.

Stored on ``Connector.tool_policy`` as ``{"off": [names], "admins_only": [names]}``. A policy
names tools rather than listing the allowed ones, so it works for kinds whose tool list is only
known per request (a tool source, a remote MCP server): a tool the policy does not name is
callable by every member, like before policies existed. The gateway applies it to every kind
(gateway.policy); the write gate (connectors.write_gate) still applies on top.
"""

from collections.abc import Mapping
from typing import Any

from connectors.base import SettingsError

OFF = "off"
ADMINS_ONLY = "admins_only"
ADMIN = "admin"
MAX_TOOLS = 500
MAX_NAME = 200


def tool_policy_clean(data: Any) -> dict[str, list[str]]:
    """The policy to store, or SettingsError naming what is wrong (API and dashboard alike)."""
    if not isinstance(data, Mapping):
        raise SettingsError({"tool_policy": "must be an object with 'off' and 'admins_only'"})
    errors = {key: "unknown key" for key in data if key not in (OFF, ADMINS_ONLY)}
    cleaned: dict[str, list[str]] = {}
    for key in (OFF, ADMINS_ONLY):
        names = data.get(key, [])
        if not isinstance(names, list | tuple) or not all(
            isinstance(n, str) and 0 < len(n.strip()) <= MAX_NAME for n in names
        ):
            errors[key] = f"must be a list of tool names (1-{MAX_NAME} characters each)"
            continue
        if len(names) > MAX_TOOLS:
            errors[key] = f"names at most {MAX_TOOLS} tools"
            continue
        cleaned[key] = sorted({n.strip() for n in names})
    if errors:
        raise SettingsError({f"tool_policy.{k}": v for k, v in errors.items()})
    cleaned[ADMINS_ONLY] = [n for n in cleaned[ADMINS_ONLY] if n not in cleaned[OFF]]
    return cleaned


def tool_refusal(policy: Mapping[str, Any] | None, *, role: str | None, tool: str) -> str | None:
    """Why the caller with ``role`` may not call ``tool`` under ``policy``, or None if they may."""
    policy = policy or {}
    if tool in policy.get(OFF, ()):
        return f"{tool} is turned off on this connector by its admins"
    if tool in policy.get(ADMINS_ONLY, ()) and role != ADMIN:
        return f"{tool} may only be called by the tenant's admins on this connector"
    return None
