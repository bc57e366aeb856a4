"""Authorization codes, grants and tokens, with Intuit's lifetimes and rotation rule.

A grant is one consent (client, company, user). It holds exactly one live refresh token value:
within the rotation window a refresh returns the same value; after it, a new value, and the old
one is unknown from that instant on (strict rotation, no grace). The refresh token expires 100
days after its last use (rolling) and never later than five years after consent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"


@dataclass
class TokenLifetimes:
    """Seconds; defaults are Intuit's."""

    access_token: int = 3600
    authorization_code: int = 600
    refresh_rotation_window: int = 24 * 3600
    refresh_token: int = 100 * 24 * 3600
    grant_maximum: int = 5 * 365 * 24 * 3600


class OAuthFailure(Exception):
    """An OAuth error response: `{"error": error}` with `status`."""

    def __init__(self, status: int, error: str, description: str = ""):
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class AuthorizationCode:
    value: str
    client_id: str
    redirect_uri: str
    realm_id: str
    user_email: str
    scopes: tuple[str, ...]
    issued_at: datetime
    used: bool = False


@dataclass
class Grant:
    grant_id: str
    client_id: str
    realm_id: str
    user_email: str
    scopes: tuple[str, ...]
    consented_at: datetime
    hard_expires_at: datetime
    refresh_token: str
    refresh_token_issued_at: datetime
    refresh_token_expires_at: datetime
    revoked: bool = False
    access_tokens: set[str] = field(default_factory=set)

    @property
    def user_sub(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"intuit-emulator:{self.user_email}"))


@dataclass
class AccessTokenRecord:
    value: str
    grant_id: str
    expires_at: datetime


@dataclass
class TokenIssue:
    """What one successful token request produced."""

    grant: Grant
    access_token: str
    expires_in: int
    refresh_expires_in: int


def _random_refresh_token(now: datetime) -> str:
    alphabet = string.ascii_letters + string.digits
    return (
        f"AB11{int(now.timestamp()) + 100 * 86400}"
        f"{''.join(secrets.choice(alphabet) for _ in range(38))}"
    )


def _random_access_token() -> str:
    # Intuit's access tokens are opaque JWE strings; this one only looks the part.
    return (
        "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0.."
        f"{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(96)}.{secrets.token_urlsafe(16)}"
    )


class TokenAuthority:
    """OAuth state of the emulator. The caller holds the emulator's lock around every call."""

    def __init__(self, lifetimes: TokenLifetimes, counters: Counter[str]):
        self.lifetimes = lifetimes
        self.counters = counters
        self.codes: dict[str, AuthorizationCode] = {}
        self.grants: dict[str, Grant] = {}
        self.refresh_index: dict[str, str] = {}  # live refresh token value -> grant id
        self.access_tokens: dict[str, AccessTokenRecord] = {}

    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        realm_id: str,
        user_email: str,
        scopes: tuple[str, ...],
        now: datetime,
    ) -> str:
        value = f"AB11{secrets.token_urlsafe(36)}"
        self.codes[value] = AuthorizationCode(
            value, client_id, redirect_uri, realm_id, user_email, scopes, now
        )
        return value

    def exchange_code(
        self, *, client_id: str, code: str, redirect_uri: str, now: datetime
    ) -> TokenIssue:
        """Redeem a code once; every failure is `invalid_grant`, as at Intuit."""
        record = self.codes.get(code)
        if record is None or record.used or record.client_id != client_id:
            raise OAuthFailure(400, "invalid_grant", "authorization code is unknown or used")
        if now >= record.issued_at + timedelta(seconds=self.lifetimes.authorization_code):
            raise OAuthFailure(400, "invalid_grant", "authorization code expired")
        if record.redirect_uri != redirect_uri:
            raise OAuthFailure(400, "invalid_grant", "redirect_uri does not match")
        record.used = True
        grant = self._create_grant(record, now)
        self.counters["token.authorization_code"] += 1
        return self._issue(grant, now)

    def _create_grant(self, code: AuthorizationCode, now: datetime) -> Grant:
        hard_expiry = now + timedelta(seconds=self.lifetimes.grant_maximum)
        grant = Grant(
            grant_id=uuid.uuid4().hex,
            client_id=code.client_id,
            realm_id=code.realm_id,
            user_email=code.user_email,
            scopes=code.scopes,
            consented_at=now,
            hard_expires_at=hard_expiry,
            refresh_token=_random_refresh_token(now),
            refresh_token_issued_at=now,
            refresh_token_expires_at=min(
                now + timedelta(seconds=self.lifetimes.refresh_token), hard_expiry
            ),
        )
        self.grants[grant.grant_id] = grant
        self.refresh_index[grant.refresh_token] = grant.grant_id
        self.counters["tokens.refresh_issued"] += 1
        return grant

    def refresh(self, *, client_id: str, refresh_token: str, now: datetime) -> TokenIssue:
        """Apply the rotation rule and rolling expiry; see the module docstring."""
        self.counters["token.refresh"] += 1
        grant_id = self.refresh_index.get(refresh_token)
        grant = self.grants.get(grant_id) if grant_id else None
        if grant is None or grant.revoked or grant.client_id != client_id:
            self.counters["token.refresh.invalid_grant"] += 1
            raise OAuthFailure(400, "invalid_grant", "refresh token is invalid")
        if now >= grant.refresh_token_expires_at or now >= grant.hard_expires_at:
            self._forget_refresh_token(grant)
            self.counters["token.refresh.invalid_grant"] += 1
            raise OAuthFailure(400, "invalid_grant", "refresh token expired")
        window = timedelta(seconds=self.lifetimes.refresh_rotation_window)
        if now - grant.refresh_token_issued_at >= window:
            self._forget_refresh_token(grant)
            grant.refresh_token = _random_refresh_token(now)
            grant.refresh_token_issued_at = now
            self.refresh_index[grant.refresh_token] = grant.grant_id
            self.counters["token.refresh.rotated"] += 1
            self.counters["tokens.refresh_issued"] += 1
        grant.refresh_token_expires_at = min(
            now + timedelta(seconds=self.lifetimes.refresh_token), grant.hard_expires_at
        )
        return self._issue(grant, now)

    def _forget_refresh_token(self, grant: Grant) -> None:
        self.refresh_index.pop(grant.refresh_token, None)

    def _issue(self, grant: Grant, now: datetime) -> TokenIssue:
        access_token = _random_access_token()
        lifetime = self.lifetimes.access_token
        self.access_tokens[access_token] = AccessTokenRecord(
            access_token, grant.grant_id, now + timedelta(seconds=lifetime)
        )
        grant.access_tokens.add(access_token)
        self.counters["tokens.access_issued"] += 1
        refresh_left = int((grant.refresh_token_expires_at - now).total_seconds())
        return TokenIssue(grant, access_token, lifetime, refresh_left)

    def grant_for_token(self, token: str) -> Grant | None:
        """The grant a live access or refresh token belongs to."""
        grant_id = self.refresh_index.get(token)
        if grant_id is None and token in self.access_tokens:
            grant_id = self.access_tokens[token].grant_id
        return self.grants.get(grant_id) if grant_id else None

    def revoke_grant(self, grant: Grant) -> None:
        """Kill the grant: its refresh token and every access token issued under it."""
        if grant.revoked:
            return
        grant.revoked = True
        self._forget_refresh_token(grant)
        for token in grant.access_tokens:
            self.access_tokens.pop(token, None)
        grant.access_tokens.clear()
        self.counters["grants.revoked"] += 1

    def revoke_realm(self, realm_id: str) -> int:
        """A company admin disconnects the app: every grant for that company dies."""
        grants = [g for g in self.grants.values() if g.realm_id == realm_id and not g.revoked]
        for grant in grants:
            self.revoke_grant(grant)
        return len(grants)

    def authenticate(self, access_token: str, now: datetime) -> Grant | str:
        """The grant behind a bearer token, or a reason it is refused."""
        record = self.access_tokens.get(access_token)
        if record is None:
            return "Token revoked or invalid"
        grant = self.grants[record.grant_id]
        if grant.revoked:
            return "Token revoked or invalid"
        if now >= record.expires_at:
            return "Token expired"
        return grant

    def issue_direct(
        self, *, client_id: str, realm_id: str, user_email: str, scopes: tuple[str, ...], now
    ) -> TokenIssue:
        """Tokens without the browser round trip (test shortcut; still a normal grant)."""
        code = AuthorizationCode("", client_id, "", realm_id, user_email, scopes, now, used=True)
        return self._issue(self._create_grant(code, now), now)


def build_id_token(
    *, grant: Grant, issuer: str, client_secret: str, now: datetime, lifetime: int = 3600
) -> str:
    """A compact HS256 JWT keyed with the client secret (Intuit signs RS256; nobody here checks)."""

    def encode(part: dict) -> str:
        raw = json.dumps(part, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    issued = int(now.timestamp())
    header = encode({"alg": "HS256", "typ": "JWT", "kid": "emulator"})
    payload = encode(
        {
            "iss": issuer,
            "sub": grant.user_sub,
            "aud": [grant.client_id],
            "realmid": grant.realm_id,
            "auth_time": int(grant.consented_at.timestamp()),
            "iat": issued,
            "exp": issued + lifetime,
        }
    )
    signature = hmac.new(
        client_secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256
    ).digest()
    return f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
