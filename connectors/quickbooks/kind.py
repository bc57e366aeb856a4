"""The ``quickbooks`` connector kind: what it declares to the platform (connectors.base).

Imported when settings load (for its env settings), so the heavy modules load lazily.
"""

from connectors.base import (
    WRITES_SETTING,
    BooleanSetting,
    ConnectorKind,
    SettingsSchema,
    UpstreamOAuth,
)
from connectors.quickbooks.env import ENV

PROVIDER = "quickbooks"
# What the write tools need besides the platform's own scope: a client asks for it (step-up)
# only when a member first calls one, and the member sees it on the consent page.
WRITE_SCOPE = "quickbooks.write"


def _build_server():
    from connectors.quickbooks.tools import build_server

    return build_server()


def _build_provider():
    from connectors.quickbooks.provider import build_provider

    return build_provider()


def _start_emulator(setup):
    from connectors.quickbooks.embedded import start_emulator

    return start_emulator(setup)


quickbooks = ConnectorKind(
    slug="quickbooks",
    title="QuickBooks",
    description="QuickBooks Online: company data, queries, reports and (optionally) writes.",
    build_server=_build_server,
    upstream=UpstreamOAuth(provider=PROVIDER, build_provider=_build_provider),
    settings_schema=SettingsSchema(
        fields=(
            BooleanSetting(
                WRITES_SETTING,
                label="Writes allowed",
                help="Let tools create and change QuickBooks records (off: read-only).",
            ),
        )
    ),
    env=ENV,
    embedded_emulator=_start_emulator,
    scopes={WRITE_SCOPE: "Create and change QuickBooks records, where the connector allows writes"},
)
