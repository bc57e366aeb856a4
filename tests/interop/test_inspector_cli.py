"""MCP Inspector 2's CLI, a second client implementation (TypeScript), against a QuickBooks
connector: discovery, registration, sign-in and consent (a scripted browser as BROWSER), the hop
to the Intuit emulator, the token exchange, then a tool call."""

import json
import os
import sys

from tests.support.interop import INTEROP, run_node, tool_path
from tests.support.live import free_port

REPOSITORY = INTEROP.parent


def test_inspector_cli_connects_through_the_quickbooks_hop_and_calls_a_tool(
    live_url, acme, quickbooks_on_emulator, tmp_path
):
    from tenants.services import connector_create

    package = ("@modelcontextprotocol", "inspector")
    launcher = tool_path("inspector", *package, "clients", "launcher", "build", "index.js")
    callback = f"{live_url}/upstream/quickbooks/callback"
    quickbooks_on_emulator.emulator.configure(redirect_uris=[callback])
    connector = connector_create(tenant=acme["tenant"], kind="quickbooks", slug="qbo")
    browser = tmp_path / "browser"
    browser.write_text(
        f'#!/bin/sh\ncd "{REPOSITORY}" && exec "{sys.executable}" '
        f'-m tests.support.scripted_browser "$@" >>"{tmp_path}/browser.log" 2>&1\n'
    )
    browser.chmod(0o755)
    output = tmp_path / "result.json"
    result = run_node(
        [
            str(launcher),
            "--cli",
            connector.url,
            "--method",
            "tools/call",
            "--tool-name",
            "company_info",
            "--callback-url",
            f"http://127.0.0.1:{free_port()}/oauth/callback",
            "--client-config",
            str(tmp_path / "client.json"),
            "--output",
            str(output),
        ],
        env={
            "HOME": str(tmp_path),
            "BROWSER": str(browser),
            "MCP_AUTO_OPEN_ENABLED": "true",
            "MCP_INSPECTOR_SECRET_STORE": "memory",
            "SCRIPTED_BROWSER_USER": "bob",
            "SCRIPTED_BROWSER_PASSWORD": "bob-pass-123",
            "SCRIPTED_BROWSER_ALSO_VISITS": quickbooks_on_emulator.base_url,
            "PYTHONPATH": os.pathsep.join([str(REPOSITORY), str(REPOSITORY / "platform")]),
        },
        cwd=tmp_path,
        timeout=60,
    )
    log = tmp_path / "browser.log"
    browser_log = log.read_text() if log.exists() else ""
    assert result.returncode == 0, "\n".join(
        [result.stdout[-3000:], result.stderr[-3000:], "browser:", browser_log[-3000:]]
    )
    answer = json.loads(output.read_text())
    assert answer.get("isError") is not True, answer
    from upstream.models import UpstreamConnection

    connection = UpstreamConnection.objects.get(connector=connector, user__username="bob")
    assert answer["structuredContent"]["CompanyName"] == connection.external_account_name
