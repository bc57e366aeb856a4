"""The ``remote_mcp`` connector kind: an existing MCP server behind the platform's auth."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connectors.base import (
    OUTBOUND_ALLOWED_NETWORKS,
    ChoiceSetting,
    ConnectorKind,
    EnvSetting,
    SecretSetting,
    SettingsSchema,
    TextSetting,
    UpstreamOAuth,
    UrlSetting,
    url_refusal,
)
from connectors.remote_mcp.provider import (
    LOOPBACK,
    PROVIDER,
    RemoteMCPProvider,
    client_metadata_document,
)
from connectors.remote_mcp.settings import AUTH_MODES, RemoteSettings

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")


def _flag(text: str) -> bool:
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("use true or false")


ALLOW_HTTP_LOOPBACK = EnvSetting(
    "REMOTE_MCP_ALLOW_HTTP_LOOPBACK",
    default="false",
    default_embedded="true",
    help="Allow plain-http upstream URLs on 127.0.0.1/localhost (embedded default and tests).",
    parse=_flag,
    check=lambda value, embedded: (
        None if not value or embedded else "plain http upstreams are for the embedded default"
    ),
)


@dataclass(frozen=True)
class UpstreamUrlSetting(UrlSetting):
    """https, or http to a loopback address where REMOTE_MCP_ALLOW_HTTP_LOOPBACK is on; a host
    at a public address, or in OUTBOUND_ALLOWED_NETWORKS (checked again at every connection)."""

    def clean(self, value: Any) -> str:
        value = UrlSetting.clean(self, value)
        parts = urlsplit(value)
        if parts.scheme == "http" and not (
            parts.hostname in LOOPBACK and ALLOW_HTTP_LOOPBACK.value()
        ):
            raise ValueError("must be an https URL (plain http only for loopback in development)")
        refusal = url_refusal(value)
        if refusal:
            raise ValueError(f"is refused: {refusal}")
        return value


@dataclass(frozen=True)
class HeaderNameSetting(TextSetting):
    def clean(self, value: Any) -> str:
        value = super().clean(value)
        if value and not HEADER_NAME.match(value):
            raise ValueError("must be an HTTP header name such as Authorization or X-API-Key")
        return value


@dataclass(frozen=True)
class SecondsSetting(TextSetting):
    maximum: float = 300.0

    def clean(self, value: Any) -> str:
        value = super().clean(str(value) if isinstance(value, int | float) else value)
        try:
            number = float(value)
        except ValueError:
            raise ValueError("must be a number of seconds") from None
        if not 0 <= number <= self.maximum:
            raise ValueError(f"must be between 0 and {self.maximum:g} seconds")
        return value


SCHEMA = SettingsSchema(
    fields=(
        UpstreamUrlSetting(
            "upstream_url",
            label="Upstream MCP URL",
            help="The Streamable HTTP endpoint of the existing MCP server.",
            required=True,
            allow_http=True,
        ),
        ChoiceSetting(
            "upstream_auth",
            label="Upstream auth",
            help="none; header (a secret header); oauth (the platform signs in as an MCP client).",
            default="none",
            required=True,
            choices=tuple((mode, mode) for mode in AUTH_MODES),
        ),
        HeaderNameSetting(
            "header_name",
            label="Header name",
            help="For header auth: Authorization, X-API-Key, ...",
            default="Authorization",
        ),
        SecretSetting(
            "header_value",
            label="Header value (shared)",
            help="For header auth in shared mode, e.g. 'Bearer sk-...'. Members enter their own "
            "in per-member mode.",
        ),
        TextSetting(
            "oauth_client_id",
            label="OAuth client ID",
            help="Optional, for oauth: a client registered at the upstream (else CIMD or DCR).",
        ),
        SecretSetting("oauth_client_secret", label="OAuth client secret"),
        TextSetting("oauth_scope", label="OAuth scope", help="Optional scope to request."),
        TextSetting(
            "allowed_tools",
            label="Allowed tools",
            help="Tool names, separated by commas or spaces. Empty: every tool whose "
            "annotations say readOnlyHint (tools that may write stay off).",
            max_length=5000,
        ),
        SecondsSetting(
            "timeout_seconds", label="Timeout (seconds)", default="30", help="Per upstream call."
        ),
        SecondsSetting(
            "list_ttl_seconds",
            label="List cache (seconds)",
            default="60",
            help="How long tool, resource and prompt lists are reused (0: never).",
            maximum=3600,
        ),
    )
)


def _build_server():
    from connectors.remote_mcp.proxy import RemoteMCPServer

    return RemoteMCPServer()


def build_provider(connector_settings=None) -> RemoteMCPProvider:
    return RemoteMCPProvider(connector_settings)


def needs_connection(connector_settings, mode: str) -> bool:
    """Only oauth and per-member header connectors hold an upstream connection."""
    config = RemoteSettings.from_mapping(connector_settings, mode=mode)
    return config.upstream_auth == "oauth" or (
        config.upstream_auth == "header" and config.per_member
    )


def credential_label(connector_settings) -> str | None:
    """Per-member header connectors ask each member for their secret on a platform page."""
    if connector_settings.get("upstream_auth") != "header":
        return None
    return str(connector_settings.get("header_name") or "Authorization")


remote_mcp = ConnectorKind(
    slug="remote_mcp",
    title="Remote MCP server",
    description="An existing Streamable HTTP MCP server, behind this platform's sign-in.",
    build_server=_build_server,
    upstream=UpstreamOAuth(
        provider=PROVIDER,
        build_provider=build_provider,
        per_connector=True,
        needs_connection=needs_connection,
        credential_label=credential_label,
        client_metadata=client_metadata_document,
    ),
    settings_schema=SCHEMA,
    env=(ALLOW_HTTP_LOOPBACK, OUTBOUND_ALLOWED_NETWORKS),
    doctor_url=lambda connector_settings: connector_settings.get("upstream_url") or None,
)
