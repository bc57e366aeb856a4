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

# Intuit's limits per company (10 requests a second, 500 a minute), kept by the platform across
# every web process. Lower them when another deployment uses the same Intuit app and companies.
THROTTLE_PER_SECOND = EnvSetting(
    "QUICKBOOKS_THROTTLE_PER_SECOND",
    default="10",
    help="Accounting API requests per company per second, across all processes.",
    parse=int,
    check=lambda value, embedded: None if value > 0 else "must be at least 1",
)
THROTTLE_PER_MINUTE = EnvSetting(
    "QUICKBOOKS_THROTTLE_PER_MINUTE",
    default="500",
    help="Accounting API requests per company per minute, across all processes.",
    parse=int,
    check=lambda value, embedded: None if value > 0 else "must be at least 1",
)

ENV = (
    CLIENT_ID,
    CLIENT_SECRET,
    ENVIRONMENT,
    TIMEOUT_SECONDS,
    THROTTLE_PER_SECOND,
    THROTTLE_PER_MINUTE,
)
