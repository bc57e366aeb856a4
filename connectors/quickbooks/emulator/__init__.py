"""A local Intuit: OAuth 2.0 server and QuickBooks Online Accounting API subset, for tests and
the embedded server. Never reachable by accident: something must call `create_app` and serve it.

    app = create_app(base_url="http://127.0.0.1:8001", client_id="id", client_secret="secret",
                     redirect_uris=["http://127.0.0.1:8000/upstream/quickbooks/callback"])
    emulator = app.state.emulator          # clock, faults, counters, companies, settings
"""

from .app import create_app
from .clock import Clock
from .faults import ENDPOINT_NAMES, FAULT_KINDS, InjectedFault
from .ratelimit import ThrottleLimits
from .state import Emulator, EmulatorSettings, RequestRecord
from .tokens import ACCOUNTING_SCOPE, TokenLifetimes

__all__ = [
    "ACCOUNTING_SCOPE",
    "ENDPOINT_NAMES",
    "FAULT_KINDS",
    "Clock",
    "Emulator",
    "EmulatorSettings",
    "InjectedFault",
    "RequestRecord",
    "ThrottleLimits",
    "TokenLifetimes",
    "create_app",
]
