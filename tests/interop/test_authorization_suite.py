"""The official suite's authorization-server scenarios against our issuer.

The suite prints an authorization URL and waits on its own loopback callback; a scripted
browser signs in as a member, consents on the real consent page and delivers the redirect.
"""

import subprocess
import threading

from tests.support.flow import OAuthClient
from tests.support.interop import INTEROP, NODE, tool_path
from tests.support.live import free_port
from tests.support.scripted_browser import sign_in_and_return

SUITE = INTEROP / "conformance"


def test_authorization_server_scenarios(live_url, acme):
    cli = tool_path("conformance", "@modelcontextprotocol", "conformance", "dist", "index.js")
    port = free_port()
    client = OAuthClient.register(live_url, redirect_uri=f"http://127.0.0.1:{port}/callback")
    resource = acme["connector"].url
    process = subprocess.Popen(
        [
            str(NODE),
            str(cli),
            "authorization",
            "--url",
            live_url,
            "--client-id",
            client.client_id,
            "--resource",
            resource,
            "--port",
            str(port),
        ],
        cwd=SUITE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    timer = threading.Timer(180, process.kill)
    timer.start()
    lines, redirects = [], []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith(f"{live_url}/authorize?"):
                redirects.append(
                    sign_in_and_return(line.strip(), username="bob", password="bob-pass-123")
                )
        returncode = process.wait()
    finally:
        timer.cancel()
    output = "".join(lines)
    assert returncode == 0, output[-4000:]
    assert len(redirects) == 1 and redirects[0].startswith(f"http://127.0.0.1:{port}/callback?")
    assert "iss=" in redirects[0]  # RFC 9207: the issuer rides on the authorization response
    summary = output[output.find("=== SUMMARY ===") :]
    assert "✓ authorization-server-metadata-endpoint" in summary, output[-4000:]
    assert "✓ authorization-code-grant" in summary, output[-4000:]
    assert ", 0 failed" in summary.splitlines()[-1], summary
