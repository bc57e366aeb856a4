"""A ``remote_mcp`` connector's settings, as the forwarding code reads them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connectors.base import ToolContext, UpstreamNotConnected

AUTH_MODES = ("none", "header", "oauth")
DEFAULT_TIMEOUT = 30.0
DEFAULT_LIST_TTL = 60.0
NAMES = re.compile(r"[\s,]+")


def tool_names(text: str) -> frozenset[str]:
    """Tool names from an allow-list field: separated by commas, spaces or new lines."""
    return frozenset(name for name in NAMES.split(text or "") if name)


def is_read_only(tool: Mapping[str, Any]) -> bool:
    """The write gate's rule: only a tool whose annotations say readOnlyHint true is a read."""
    return (tool.get("annotations") or {}).get("readOnlyHint") is True


@dataclass(frozen=True)
class RemoteSettings:
    upstream_url: str
    upstream_auth: str = "none"
    header_name: str = "Authorization"
    header_value: str = ""  # the shared secret, unsealed (shared connectors)
    allowed_tools: frozenset[str] = frozenset()
    timeout_seconds: float = DEFAULT_TIMEOUT
    list_ttl_seconds: float = DEFAULT_LIST_TTL
    per_member: bool = True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, mode: str = "per_user") -> RemoteSettings:
        url = str(data.get("upstream_url") or "")
        if not url or urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("it has no upstream URL")
        auth = str(data.get("upstream_auth") or "none")
        if auth not in AUTH_MODES:
            raise ValueError(f"unknown upstream auth {auth!r}")
        return cls(
            upstream_url=url,
            upstream_auth=auth,
            header_name=str(data.get("header_name") or "Authorization"),
            header_value=str(data.get("header_value") or ""),
            allowed_tools=tool_names(str(data.get("allowed_tools") or "")),
            timeout_seconds=_positive(data.get("timeout_seconds"), DEFAULT_TIMEOUT),
            list_ttl_seconds=_positive(data.get("list_ttl_seconds"), DEFAULT_LIST_TTL, zero=True),
            per_member=mode != "shared",
        )

    @property
    def where(self) -> str:
        return f"The upstream MCP server {self.upstream_url}"

    @property
    def shared_header(self) -> bool:
        return self.upstream_auth == "header" and not self.per_member

    def tool_allowed(self, tool: Mapping[str, Any]) -> bool:
        """Listed and callable: named in the allow-list, or (no list) a read-only tool."""
        if self.allowed_tools:
            return tool.get("name") in self.allowed_tools
        return is_read_only(tool)

    def connection_key(self, context: ToolContext) -> str:
        """Whose credential a request uses: the member's own, or the connector's shared one."""
        owner = context.user_id if self.per_member and self.upstream_auth != "none" else "shared"
        return f"{context.connector_id}:{owner}"

    async def credential(self, context: ToolContext, *, force_refresh: bool = False) -> dict:
        """The headers that authenticate this caller upstream."""
        if self.upstream_auth == "none":
            return {}
        if self.shared_header:
            if not self.header_value:
                raise UpstreamNotConnected(
                    "This connector's upstream key has not been entered yet: a tenant admin "
                    "sets it in the connector's settings."
                )
            return {self.header_name: self.header_value}
        if context.upstream is None:
            raise UpstreamNotConnected("This connector has no upstream connection.")
        access = await context.upstream.access(force_refresh=force_refresh)
        if self.upstream_auth == "header":
            return {self.header_name: access.access_token}
        return {"Authorization": f"Bearer {access.access_token}"}


def _positive(value: Any, default: float, *, zero: bool = False) -> float:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if number < 0 or (number == 0 and not zero):
        raise ValueError(f"{value!r} must be positive")
    return number
