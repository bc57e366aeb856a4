"""The QuickBooks side of the platform's upstream-provider interface (connectors.base)."""

from collections.abc import Mapping
from dataclasses import replace

import httpx
from django.conf import settings

from connectors.base import UpstreamReauthRequired, UpstreamTokens, UpstreamUnavailable
from connectors.quickbooks import client as qbo

PROVIDER = "quickbooks"


def environment() -> str:
    """ "production", "sandbox" or the emulator's base URL (settings.QUICKBOOKS_ENVIRONMENT)."""
    return settings.QUICKBOOKS_ENVIRONMENT


def endpoints() -> qbo.IntuitEndpoints:
    try:
        return qbo.load_endpoints(environment())
    except qbo.QuickBooksError as exc:
        raise UpstreamUnavailable(f"Intuit discovery failed: {exc}") from None


def _tokens(token_set: qbo.TokenSet, realm_id: str = "") -> UpstreamTokens:
    return UpstreamTokens(
        access_token=token_set.access_token,
        refresh_token=token_set.refresh_token,
        expires_in=token_set.expires_in,
        refresh_expires_in=token_set.refresh_expires_in,
        external_account_id=realm_id,
    )


def _translate(exc: qbo.QuickBooksError) -> Exception:
    """Intuit's errors as the platform's two kinds: dead grant, or try again later."""
    if isinstance(exc, qbo.InvalidGrant):
        return UpstreamReauthRequired(f"Intuit refused the grant (invalid_grant): {exc}")
    if isinstance(exc, qbo.Throttled):
        return UpstreamUnavailable(
            f"Intuit throttled the request: {exc}", retry_after=exc.retry_after
        )
    if isinstance(exc, qbo.InvalidClient):
        # Our app credentials are wrong: not the user's fault, and not fixed by reconnecting.
        return UpstreamUnavailable(f"Intuit refused this server's app credentials: {exc}")
    return UpstreamUnavailable(f"Intuit is unavailable: {exc}")


def _company_name(token_set: qbo.TokenSet, realm_id: str) -> str:
    """The company's name for the dashboard and status tool; best effort (empty on failure),
    since the connection works without it."""
    api = endpoints().api_base
    with qbo.make_client() as http:
        try:
            response = http.get(
                f"{api}/company/{realm_id}/companyinfo/{realm_id}",
                params={"minorversion": qbo.MINOR_VERSION},
                headers={
                    "Authorization": f"Bearer {token_set.access_token}",
                    "Accept": "application/json",
                },
            )
            return str(response.json()["CompanyInfo"]["CompanyName"])[:200]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return ""


class QuickBooksProvider:
    name = PROVIDER

    def __init__(self, *, client_id: str, client_secret: str):
        self.client_id = client_id
        self.client_secret = client_secret

    def _oauth(self) -> qbo.IntuitOAuthClient:
        return qbo.IntuitOAuthClient(
            endpoints(), client_id=self.client_id, client_secret=self.client_secret
        )

    def authorization_url(self, *, state: str, redirect_uri: str) -> str:
        return qbo.authorization_url(
            endpoints(), client_id=self.client_id, redirect_uri=redirect_uri, state=state
        )

    def exchange_code(self, *, params: Mapping[str, str], redirect_uri: str) -> UpstreamTokens:
        realm_id = params.get("realmId", "")
        if not params.get("code") or not realm_id:
            raise UpstreamReauthRequired("Intuit's answer has no code or no realmId")
        try:
            token_set = self._oauth().exchange_code(params["code"], redirect_uri)
        except qbo.QuickBooksError as exc:
            raise _translate(exc) from None
        tokens = _tokens(token_set, realm_id)
        return replace(tokens, external_account_name=_company_name(token_set, realm_id))

    def refresh(self, refresh_token: str) -> UpstreamTokens:
        try:
            return _tokens(self._oauth().refresh(refresh_token))
        except qbo.QuickBooksError as exc:
            raise _translate(exc) from None

    def revoke(self, token: str) -> None:
        try:
            self._oauth().revoke(token)
        except qbo.QuickBooksError as exc:
            raise _translate(exc) from None


def build_provider() -> QuickBooksProvider:
    return QuickBooksProvider(
        client_id=settings.QUICKBOOKS_CLIENT_ID, client_secret=settings.QUICKBOOKS_CLIENT_SECRET
    )
