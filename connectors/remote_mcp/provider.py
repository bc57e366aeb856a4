"""The ``remote_mcp`` side of the platform's upstream-provider interface (connectors.base).

One provider per connector (its upstream URL and client settings). ``oauth`` connectors run
the authorization code flow against the upstream's own authorization server; per-member
``header`` connectors keep each member's secret header as the connection's "access token",
which never expires and needs no refresh.

Between ``authorization_url`` and ``exchange_code`` (the browser's trip to the upstream) the
discovered endpoints, the client identity and the PKCE verifier wait in the flow the platform
keeps with the hop's single-use state, server-side in the browser's session.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from connectors.base import (
    AuthorizationStart,
    UpstreamReauthRequired,
    UpstreamTokens,
    UpstreamUnavailable,
    guarded_sync_http,
)
from connectors.remote_mcp import oauth
from connectors.remote_mcp.discovery import AuthServer, DiscoveryFailed, discover

PROVIDER = "remote_mcp"
CLIENT_METADATA = "client-metadata.json"
# A header credential does not expire; the refresher still looks at it once a day.
HEADER_EXPIRES_IN = 10 * 365 * 86400
HTTP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
LOOPBACK = ("127.0.0.1", "localhost", "::1")

_http_lock = threading.Lock()
_http: tuple[int, httpx.Client] | None = None


def shared_sync_http() -> httpx.Client:
    """The process's sync client for upstream authorization servers (made again after fork);
    it connects only to addresses the platform allows (connectors.base.guarded_sync_http)."""
    global _http
    with _http_lock:
        if _http is None or _http[0] != os.getpid():
            _http = (os.getpid(), guarded_sync_http(HTTP_TIMEOUT))
        return _http[1]


def client_metadata_url(redirect_uri: str) -> str:
    """The platform's client ID metadata document: next to its callback, under PUBLIC_URL."""
    return urljoin(redirect_uri, CLIENT_METADATA)


def client_metadata_document(redirect_uri: str) -> dict[str, Any]:
    """What the platform serves at ``client_metadata_url(redirect_uri)``."""
    parts = urlsplit(redirect_uri)
    return {
        "client_id": client_metadata_url(redirect_uri),
        "client_name": oauth.CLIENT_NAME,
        "client_uri": f"{parts.scheme}://{parts.netloc}",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }


def header_grant(value: str) -> str:
    return json.dumps({"header": value})


class RemoteMCPProvider:
    name = PROVIDER

    def __init__(self, connector_settings: Mapping[str, Any] | None = None, *, http=None):
        self.settings = dict(connector_settings or {})
        self.http = http or shared_sync_http()

    # -- the hop ----------------------------------------------------------------------------

    def authorization_url(self, *, state: str, redirect_uri: str) -> AuthorizationStart:
        try:
            server = discover(self._upstream_url(), http=self.http)
            identity = oauth.client_identity(
                server,
                http=self.http,
                redirect_uri=redirect_uri,
                static=self._static_identity(),
                cimd_url=self._cimd_url(redirect_uri),
            )
        except (DiscoveryFailed, oauth.RegistrationFailed) as exc:
            raise UpstreamUnavailable(str(exc)) from None
        verifier = secrets.token_urlsafe(48)
        url = oauth.authorization_url(
            server,
            identity,
            redirect_uri=redirect_uri,
            state=state,
            verifier=verifier,
            scope=str(self.settings.get("oauth_scope") or ""),
        )
        flow = {
            "server": {**asdict(server), "steps": list(server.steps)},
            "identity": asdict(identity),
            "verifier": verifier,
        }
        return AuthorizationStart(url=url, flow=flow, steps=server.steps)

    def exchange_code(
        self,
        *,
        params: Mapping[str, str],
        redirect_uri: str,
        flow: Mapping[str, Any] | None = None,
    ) -> UpstreamTokens:
        if not flow:
            raise UpstreamReauthRequired("the sign-in at the upstream was not started here")
        server = AuthServer(**{**flow["server"], "steps": ()})
        identity = oauth.ClientIdentity(**flow["identity"])
        if params.get("iss") and params["iss"].rstrip("/") != server.issuer.rstrip("/"):
            # RFC 9207: the answer came from another authorization server (mix-up attack).
            raise UpstreamReauthRequired(
                f"the answer names issuer {params['iss']!r}, not {server.issuer!r}"
            )
        if not params.get("code"):
            raise UpstreamReauthRequired("the upstream's answer has no code")
        tokens = oauth.exchange_code(
            server,
            identity,
            http=self.http,
            code=params["code"],
            verifier=flow["verifier"],
            redirect_uri=redirect_uri,
        )
        host = urlsplit(server.issuer).netloc
        return UpstreamTokens(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_in=tokens.expires_in,
            external_account_id=host[:100],
            external_account_name=f"{identity.how} client at {host}"[:200],
        )

    # -- per-member header ------------------------------------------------------------------

    def accept_credential(self, value: str) -> UpstreamTokens:
        """A member's secret header value, as the tokens the platform stores (encrypted)."""
        value = value.strip()
        if not value or "\n" in value or "\r" in value:
            raise UpstreamReauthRequired("the key is empty or spans several lines")
        return UpstreamTokens(
            access_token=value,
            refresh_token=header_grant(value),
            expires_in=HEADER_EXPIRES_IN,
            external_account_id=urlsplit(self._upstream_url()).netloc[:100],
            external_account_name=f"{self.settings.get('header_name') or 'Authorization'} header",
        )

    # -- the refresher ----------------------------------------------------------------------

    def refresh(self, refresh_token: str) -> UpstreamTokens:
        try:
            header = json.loads(refresh_token).get("header")
        except (ValueError, AttributeError):
            header = None
        if isinstance(header, str):
            return UpstreamTokens(header, refresh_token, HEADER_EXPIRES_IN)
        return oauth.refresh(oauth.Grant.loads(refresh_token), http=self.http)

    def revoke(self, token: str) -> None:
        try:
            if "header" in json.loads(token):
                return
        except (ValueError, TypeError):
            pass
        oauth.revoke(oauth.Grant.loads(token), http=self.http)

    # -- settings ---------------------------------------------------------------------------

    def _upstream_url(self) -> str:
        url = str(self.settings.get("upstream_url") or "")
        if not url:
            raise UpstreamUnavailable("the connector has no upstream URL")
        return url

    def _static_identity(self) -> oauth.ClientIdentity | None:
        client_id = str(self.settings.get("oauth_client_id") or "")
        if not client_id:
            return None
        secret = str(self.settings.get("oauth_client_secret") or "") or None
        method = "client_secret_post" if secret else "none"
        return oauth.ClientIdentity(client_id, secret, method, "static")

    def _cimd_url(self, redirect_uri: str) -> str | None:
        """CIMD needs an https client ID the upstream can fetch (loopback http in tests)."""
        parts = urlsplit(redirect_uri)
        if parts.scheme == "https" or parts.hostname in LOOPBACK:
            return client_metadata_url(redirect_uri)
        return None
