"""The embedded default's Intuit: serve starts the emulator when no Intuit app is configured."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from connectors.base import EmbeddedEmulator, EmbeddedSetup
from connectors.quickbooks import env

EMULATOR_CLIENT_ID = "embedded-demo-client"
# Under VAR_DIR: the emulator's companies, grants and tokens outlive a restart of serve, as
# Intuit's do (delete the file to see the platform find every connection's grant gone).
STATE_FILE = "quickbooks-emulator.json"
START_SECONDS = 120


class EmulatorDidNotStart(RuntimeError):
    pass


def start_emulator(setup: EmbeddedSetup) -> EmbeddedEmulator | None:
    """Start the local Intuit on ``setup.port``, unless real Intuit credentials are configured."""
    if env.CLIENT_ID.value():
        return None
    from connectors.quickbooks.emulator.__main__ import SECRET_VARIABLE

    base = f"http://127.0.0.1:{setup.port}"
    secret = setup.kept_secret("emulator_client_secret")
    # The secret goes in the environment: in the arguments any local user could read it (ps),
    # and one in 64 starts with "-", which argparse takes for an option.
    options = dict(setup.popen_options)
    options["env"] = {**options.get("env", os.environ), SECRET_VARIABLE: secret}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.quickbooks.emulator",
            "--port",
            str(setup.port),
            "--client-id",
            EMULATOR_CLIENT_ID,
            "--redirect-uri",
            setup.callback_url,
            "--state-file",
            str(setup.var_dir / STATE_FILE),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **options,
    )
    # A cold start on a busy machine (imports, first bytecode compile) can take long.
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            httpx.get(f"{base}/.well-known/openid_configuration", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise EmulatorDidNotStart(
                    f"the QuickBooks emulator did not start on {base} (exit code {process.poll()})"
                ) from None
            time.sleep(0.1)
    return EmbeddedEmulator(
        process=process,
        environment={
            env.ENVIRONMENT.name: base,
            env.CLIENT_ID.name: EMULATOR_CLIENT_ID,
            env.CLIENT_SECRET.name: secret,
        },
        banner=f"QuickBooks: emulator at {base}",
    )
