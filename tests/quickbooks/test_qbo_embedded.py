"""serve's embedded Intuit emulator: started with the secret serve keeps for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from connectors.base import EmbeddedSetup
from connectors.quickbooks import embedded
from connectors.quickbooks.emulator.views_oauth import TOKEN_PATH
from tests.support.live import free_port


# A kept secret is token_urlsafe: one in 64 starts with "-", which an argument parser takes
# for an option (serve then failed to start for good on that VAR_DIR).
@pytest.mark.parametrize("secret", ["-looks-like-an-option", "plain-secret"])
def test_the_emulator_starts_with_any_kept_secret_and_no_one_reads_it_in_ps(
    secret, tmp_path: Path, settings
):
    del settings.QUICKBOOKS_CLIENT_ID  # no Intuit app configured: the embedded default
    child_env = {k: v for k, v in os.environ.items() if k != "QUICKBOOKS_CLIENT_ID"}
    setup = EmbeddedSetup(
        public_url="http://127.0.0.1:1",
        port=free_port(),
        callback_url="http://127.0.0.1:1/callback",
        var_dir=tmp_path,
        kept_secret=lambda name: secret,
        popen_options={"env": {**child_env, "PYTHONPATH": os.pathsep.join(sys.path)}},
    )
    started = embedded.start_emulator(setup)
    assert started is not None
    try:
        arguments = Path(f"/proc/{started.process.pid}/cmdline").read_bytes().split(b"\0")
        assert secret.encode() not in arguments

        base = started.environment["QUICKBOOKS_ENVIRONMENT"]

        def token_error(client_secret: str) -> str:
            return httpx.post(
                base + TOKEN_PATH,
                data={"grant_type": "refresh_token", "refresh_token": "unknown"},
                auth=(embedded.EMULATOR_CLIENT_ID, client_secret),
            ).json()["error"]

        assert started.environment["QUICKBOOKS_CLIENT_SECRET"] == secret
        assert token_error(secret) == "invalid_grant"  # the client is known: its grant is not
        assert token_error("another-secret") == "invalid_client"
    finally:
        started.process.terminate()
        try:
            started.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            started.process.kill()
