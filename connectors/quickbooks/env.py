"""The environment settings the QuickBooks kind reads (declared on the kind, read at start)."""

from connectors.base import EnvSetting


def _environment_problem(value: str, embedded: bool) -> str | None:
    if value in ("production", "sandbox"):
        return None
    if not value.startswith(("http://", "https://")):
        return f"must be production, sandbox or an emulator URL, not {value!r}"
    if not embedded:
        return (
            "must be production or sandbox in production; the emulator is for the embedded "
            "default and tests only"
        )
    return None


CLIENT_ID = EnvSetting("QUICKBOOKS_CLIENT_ID", help="The Intuit app's client ID.")
CLIENT_SECRET = EnvSetting("QUICKBOOKS_CLIENT_SECRET", help="The Intuit app's client secret.")
ENVIRONMENT = EnvSetting(
    "QUICKBOOKS_ENVIRONMENT",
    default="production",
    help='"production", "sandbox", or the base URL of the local emulator (embedded, tests).',
    check=_environment_problem,
)
# Intuit itself gives up after 120 s; a read that takes 30 s is already a failure for a tool.
TIMEOUT_SECONDS = EnvSetting(
    "QUICKBOOKS_TIMEOUT_SECONDS",
    default="30",
    help="How long a tool waits for one Accounting API answer, in seconds.",
    parse=float,
)

ENV = (CLIENT_ID, CLIENT_SECRET, ENVIRONMENT, TIMEOUT_SECONDS)
