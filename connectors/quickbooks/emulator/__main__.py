"""Run the Intuit emulator: `python -m connectors.quickbooks.emulator --port 8001`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from . import create_app

# The client secret may come from here rather than the command line, where other local users
# can read it (serve's embedded emulator passes it so).
SECRET_VARIABLE = "INTUIT_EMULATOR_CLIENT_SECRET"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Intuit (QuickBooks Online) emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--base-url", help="public URL of the emulator (default: http://HOST:PORT)")
    parser.add_argument("--client-id", default="emulator-client-id")
    parser.add_argument(
        "--client-secret",
        default=os.environ.get(SECRET_VARIABLE, "emulator-client-secret"),
        help=f"default: ${SECRET_VARIABLE}, else emulator-client-secret",
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        help="registered redirect URI (repeatable; default: accept any)",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="keep companies, grants and tokens in this file across restarts (default: memory)",
    )
    parser.add_argument(
        "--auto-approve", action="store_true", help="skip the consent page and approve at once"
    )
    args = parser.parse_args(argv)

    base_url = (args.base_url or f"http://{args.host}:{args.port}").rstrip("/")
    app = create_app(
        base_url=base_url,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uris,
        auto_approve=args.auto_approve,
        state_path=args.state_file,
    )
    print(f"Intuit emulator at {base_url}", flush=True)
    print(f"  discovery: {base_url}/.well-known/openid_configuration", flush=True)
    print(f"  client id: {args.client_id}", flush=True)
    if args.state_file:
        print(f"  state:     {args.state_file}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
