"""The official MCP Python SDK client, with its OAuth provider, driven against a live server."""

from contextlib import asynccontextmanager

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

from tests.support.oauth import Browser


class MemoryStorage:
    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


CLAUDE_REDIRECT = "https://claude.ai/api/mcp/auth_callback"


def oauth_provider(
    url: str,
    browser: Browser,
    storage: MemoryStorage | None = None,
    *,
    redirect_uri: str = CLAUDE_REDIRECT,
    client_metadata_url: str | None = None,
    auth_method: str = "client_secret_post",
) -> OAuthClientProvider:
    """An OAuthClientProvider whose "browser" is ``browser`` (sign-in and consent over HTTP)."""
    storage = storage or MemoryStorage()
    seen: dict = {}

    async def redirect_handler(authorization_url: str) -> None:
        seen["url"] = authorization_url

    async def callback_handler() -> AuthorizationCodeResult:
        query = await anyio.to_thread.run_sync(browser.authorize, seen["url"])
        browser.last_redirect = query
        return AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )

    metadata = OAuthClientMetadata(
        client_name="Claude",
        redirect_uris=[redirect_uri],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method=auth_method,
    )
    return OAuthClientProvider(
        server_url=url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=client_metadata_url,
    )


@asynccontextmanager
async def connected(url: str, provider: OAuthClientProvider, **options):
    """A connected SDK ``Client``; ``options`` go to it (mode, callbacks, log_level)."""
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), **options) as client:
            yield client
