"""What the steps learn and hand on to later steps (the client's state during a connection)."""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from doctor.wire import Document, fetch_document, origin_of


@dataclass
class Registration:
    """A client the doctor registered: what cleanup needs to remove it again."""

    client_name: str
    endpoint: str
    redirect_uris: list[str]
    response: dict


@dataclass
class Findings:
    url: str
    http: httpx.Client
    unauthenticated: httpx.Response | None = None  # the answer to the token-less initialize
    challenge: dict[str, str] | None = None  # the Bearer challenge's parameters
    resource_metadata: dict | None = None  # the RFC 9728 document clients would use
    resource_metadata_url: str = ""
    metadata: dict | None = None  # the authorization-server metadata clients would use
    metadata_url: str = ""
    expected_issuer: str = ""  # the authorization server URL the client built
    fallback_endpoints: dict[str, str] = field(default_factory=dict)  # 2025-03-26, no metadata
    registrations: list[Registration] = field(default_factory=list)
    _documents: dict[str, Document] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return origin_of(self.url)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def authorization_server(self) -> str:
        """The first authorization server the resource metadata names ('' without one)."""
        servers = (self.resource_metadata or {}).get("authorization_servers")
        if isinstance(servers, list) and servers and isinstance(servers[0], str):
            return servers[0]
        return ""

    def endpoint(self, name: str) -> str:
        """An endpoint from the metadata, else from the 2025-03-26 defaults at the root."""
        value = (self.metadata or {}).get(f"{name}_endpoint")
        if isinstance(value, str) and value:
            return value
        return self.fallback_endpoints.get(name, "")

    def document(self, url: str) -> Document:
        """A discovery document, fetched once however many rules lead to it."""
        if url not in self._documents:
            self._documents[url] = fetch_document(self.http, url)
        return self._documents[url]
