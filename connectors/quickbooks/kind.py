"""The ``quickbooks`` connector kind: its tools and its upstream OAuth needs."""

from connectors.base import ConnectorKind, UpstreamOAuth
from connectors.quickbooks.provider import PROVIDER, build_provider


def _build_server():
    from connectors.quickbooks.tools import build_server

    return build_server()


quickbooks = ConnectorKind(
    slug="quickbooks",
    title="QuickBooks",
    description="QuickBooks Online: company data, queries, reports and (optionally) writes.",
    build_server=_build_server,
    upstream=UpstreamOAuth(provider=PROVIDER, build_provider=build_provider),
    default_settings={"writes_allowed": False},
)
