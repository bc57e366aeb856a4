"""The QuickBooks Online client in one import: OAuth, Accounting API, errors, throttle.

    from connectors.quickbooks import client as qbo

    endpoints = qbo.load_endpoints("production")          # or "sandbox", or an emulator URL
    oauth = qbo.IntuitOAuthClient(endpoints, client_id=..., client_secret=...)
    url = oauth.authorization_url(redirect_uri=..., state=...)
    tokens = oauth.exchange_code(code, redirect_uri)      # TokenSet; store both tokens
    tokens = oauth.refresh(tokens.refresh_token)          # store the refresh token it returns

    async with qbo.QuickBooksApi(api_base=endpoints.api_base, realm_id=realm_id,
                                 access_token=tokens.access_token,
                                 throttle=SHARED_THROTTLE) as api:
        invoices = await api.query_all("SELECT * FROM Invoice WHERE Balance > '0'")

Nothing here stores tokens or imports Django: the platform owns storage and locking.
"""

from .api import MINOR_VERSION, QueryPage, QuickBooksApi, new_request_id, validate_query
from .errors import (
    ApiError,
    Forbidden,
    InvalidClient,
    InvalidGrant,
    InvalidQuery,
    NotFound,
    OAuthError,
    ProviderUnavailable,
    QuickBooksError,
    StaleObject,
    Throttled,
    Unauthorized,
    ValidationError,
)
from .oauth import (
    ACCOUNTING_SCOPE,
    OPENID_SCOPES,
    IntuitEndpoints,
    IntuitOAuthClient,
    TokenSet,
    authorization_url,
    clear_endpoint_cache,
    discovery_location,
    load_endpoints,
)
from .throttle import RealmThrottle, SharedRealmThrottle
from .transport import DEFAULT_TIMEOUT, RetryPolicy, make_async_client, make_client

__all__ = [
    "ACCOUNTING_SCOPE",
    "DEFAULT_TIMEOUT",
    "MINOR_VERSION",
    "OPENID_SCOPES",
    "ApiError",
    "Forbidden",
    "IntuitEndpoints",
    "IntuitOAuthClient",
    "InvalidClient",
    "InvalidGrant",
    "InvalidQuery",
    "NotFound",
    "OAuthError",
    "ProviderUnavailable",
    "QueryPage",
    "QuickBooksApi",
    "QuickBooksError",
    "RealmThrottle",
    "SharedRealmThrottle",
    "RetryPolicy",
    "StaleObject",
    "Throttled",
    "TokenSet",
    "Unauthorized",
    "ValidationError",
    "authorization_url",
    "clear_endpoint_cache",
    "discovery_location",
    "load_endpoints",
    "make_async_client",
    "make_client",
    "new_request_id",
    "validate_query",
]
