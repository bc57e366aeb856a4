"""The platform as an MCP OAuth client of an upstream server: identity, code flow, refresh.

Who the platform is at the upstream, in order of preference: client credentials an admin
entered; its client ID metadata document (a URL under PUBLIC_URL) when the upstream announces
CIMD support; a dynamic registration (RFC 7591).

A grant is kept as one opaque string (``Grant.dumps``), which the platform stores encrypted
as the connection's refresh token: the refresh token with the token endpoint, client identity
and resource it belongs to. Refreshing and revoking therefore need nothing but that string,
even after the connector's settings change.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

import httpx

from connectors.base import UpstreamReauthRequired, UpstreamTokens, UpstreamUnavailable
from connectors.remote_mcp.discovery import AuthServer, failure

CLIENT_NAME = "MCP connector platform"
# An upstream that sends no expires_in: assume an hour and let the refresher renew it.
DEFAULT_EXPIRES_IN = 3600


class RegistrationFailed(Exception):
    """The platform could not identify itself to the upstream's authorization server."""


@dataclass(frozen=True)
class ClientIdentity:
    client_id: str
    client_secret: str | None = None
    auth_method: str = "none"  # none | client_secret_post | client_secret_basic
    how: str = "static"  # static | cimd | dcr


@dataclass(frozen=True)
class Grant:
    """Everything a refresh or revocation needs, stored encrypted as one string."""

    refresh_token: str
    token_endpoint: str
    client_id: str
    client_secret: str | None = None
    auth_method: str = "none"
    resource: str = ""
    revocation_endpoint: str | None = None

    def dumps(self) -> str:
        return json.dumps({"grant": asdict(self)}, separators=(",", ":"))

    @classmethod
    def loads(cls, value: str) -> Grant:
        try:
            return cls(**json.loads(value)["grant"])
        except (ValueError, KeyError, TypeError):
            raise UpstreamReauthRequired("the stored upstream grant is unreadable") from None

    @property
    def identity(self) -> ClientIdentity:
        return ClientIdentity(self.client_id, self.client_secret, self.auth_method)


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def client_identity(
    server: AuthServer,
    *,
    http: httpx.Client,
    redirect_uri: str,
    static: ClientIdentity | None = None,
    cimd_url: str | None = None,
) -> ClientIdentity:
    """Who the platform is at ``server``: static credentials, CIMD, or a new registration."""
    if static is not None:
        return static
    if cimd_url and server.cimd_supported:
        return ClientIdentity(cimd_url, None, "none", "cimd")
    if not server.registration_endpoint:
        raise RegistrationFailed(
            f"{server.issuer} supports neither client ID metadata documents nor dynamic "
            "registration: enter a client ID (and secret) registered there in the connector's "
            "settings"
        )
    try:
        response = http.post(
            server.registration_endpoint,
            json={
                "client_name": CLIENT_NAME,
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_post",
            },
        )
    except httpx.HTTPError as exc:
        raise RegistrationFailed(
            f"registration at {server.registration_endpoint} failed ({failure(exc)})"
        ) from None
    body = _json_object(response)
    if response.status_code not in (200, 201) or not body.get("client_id"):
        raise RegistrationFailed(
            f"{server.registration_endpoint} refused the registration "
            f"(HTTP {response.status_code}: {_oauth_error(body)})"
        )
    secret = body.get("client_secret")
    method = body.get("token_endpoint_auth_method") or ("client_secret_post" if secret else "none")
    return ClientIdentity(str(body["client_id"]), secret, method, "dcr")


def authorization_url(
    server: AuthServer,
    identity: ClientIdentity,
    *,
    redirect_uri: str,
    state: str,
    verifier: str,
    scope: str = "",
) -> str:
    params = {
        "response_type": "code",
        "client_id": identity.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
        "resource": server.resource,
    }
    if scope or server.scope:
        params["scope"] = scope or server.scope
    separator = "&" if "?" in server.authorization_endpoint else "?"
    return f"{server.authorization_endpoint}{separator}{urlencode(params)}"


def _client_auth(identity: ClientIdentity, data: dict) -> tuple[dict, httpx.BasicAuth | None]:
    data = dict(data)
    if identity.auth_method == "client_secret_basic" and identity.client_secret:
        return data, httpx.BasicAuth(identity.client_id, identity.client_secret)
    data["client_id"] = identity.client_id
    if identity.client_secret:
        data["client_secret"] = identity.client_secret
    return data, None


def _token_request(http: httpx.Client, endpoint: str, identity, data: dict) -> dict:
    data, auth = _client_auth(identity, data)
    try:
        response = http.post(endpoint, data=data, auth=auth, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"{endpoint} could not be reached ({failure(exc)})") from None
    body = _json_object(response)
    if response.status_code == 200 and body.get("access_token"):
        return body
    error = body.get("error")
    if error in ("invalid_grant", "invalid_client", "unauthorized_client"):
        raise UpstreamReauthRequired(f"{endpoint} refused the grant ({_oauth_error(body)})")
    if response.status_code >= 500 or response.status_code == 429:
        raise UpstreamUnavailable(f"{endpoint} answered HTTP {response.status_code}")
    raise UpstreamReauthRequired(
        f"{endpoint} answered HTTP {response.status_code} ({_oauth_error(body)})"
    )


def _tokens(body: dict, grant: Grant) -> UpstreamTokens:
    try:
        expires_in = int(body.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN
    return UpstreamTokens(
        access_token=str(body["access_token"]),
        refresh_token=grant.dumps(),
        expires_in=expires_in,
    )


def exchange_code(
    server: AuthServer,
    identity: ClientIdentity,
    *,
    http: httpx.Client,
    code: str,
    verifier: str,
    redirect_uri: str,
) -> UpstreamTokens:
    body = _token_request(
        http,
        server.token_endpoint,
        identity,
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
            "resource": server.resource,
        },
    )
    grant = Grant(
        refresh_token=str(body.get("refresh_token") or ""),
        token_endpoint=server.token_endpoint,
        client_id=identity.client_id,
        client_secret=identity.client_secret,
        auth_method=identity.auth_method,
        resource=server.resource,
        revocation_endpoint=server.revocation_endpoint,
    )
    return _tokens(body, grant)


def refresh(grant: Grant, *, http: httpx.Client) -> UpstreamTokens:
    """New tokens for ``grant``; a rotated refresh token replaces the spent one."""
    if not grant.refresh_token:
        raise UpstreamReauthRequired("the upstream issued no refresh token: sign in again")
    data = {"grant_type": "refresh_token", "refresh_token": grant.refresh_token}
    if grant.resource:
        data["resource"] = grant.resource
    body = _token_request(http, grant.token_endpoint, grant.identity, data)
    rotated = body.get("refresh_token") or grant.refresh_token
    return _tokens(body, Grant(**{**asdict(grant), "refresh_token": str(rotated)}))


def revoke(grant: Grant, *, http: httpx.Client) -> None:
    """Revoke at the upstream when it has a revocation endpoint (RFC 7009); else nothing."""
    if not grant.revocation_endpoint or not grant.refresh_token:
        return
    data, auth = _client_auth(
        grant.identity, {"token": grant.refresh_token, "token_type_hint": "refresh_token"}
    )
    try:
        response = http.post(grant.revocation_endpoint, data=data, auth=auth)
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(
            f"{grant.revocation_endpoint} could not be reached ({failure(exc)})"
        ) from None
    if response.status_code >= 400:
        raise UpstreamUnavailable(
            f"{grant.revocation_endpoint} answered HTTP {response.status_code}"
        )


def _json_object(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _oauth_error(body: dict) -> str:
    error = str(body.get("error") or "no OAuth error")
    description = body.get("error_description")
    return f"{error}: {description}" if description else error
