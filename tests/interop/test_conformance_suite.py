"""The official MCP conformance suite's server scenarios, through the whole platform.

The suite speaks to ``/t/acme/conformance/mcp`` with a real access token (signed in, consented,
exchanged), so every request crosses the bearer check, the audience check and the gateway
before the SDK answers it. A preload adds the token, since the suite has no option for one.
Failures the platform is known to have are listed with their reasons in
``interop/conformance/baseline-<revision>.yml``; the suite fails the run on any other failure
and on any listed one that passes.
"""

import pytest

from tests.support.flow import OAuthClient
from tests.support.interop import INTEROP, run_node, tool_path
from tests.support.oauth import Browser

SUITE = INTEROP / "conformance"

# (arguments selecting the scenarios, baseline file)
RUNS = {
    "2026-07-28": ["--requirements", "2026-07-28"],
    "2025-11-25": ["--spec-version", "2025-11-25"],  # the active suite at that revision
}


@pytest.fixture
def conformance_url(live_url, acme):
    from tenants.services import connector_create

    connector_create(tenant=acme["tenant"], kind="conformance", slug="conformance")
    return f"{live_url}/t/acme/conformance/mcp"


def access_token(base: str, resource: str) -> str:
    client = OAuthClient.register(base, redirect_uri="http://127.0.0.1:9/callback")
    return client.tokens(Browser("bob", "bob-pass-123"), resource)["access_token"]


@pytest.mark.parametrize("revision", RUNS)
def test_server_scenarios_through_the_gateway(live_url, conformance_url, revision, tmp_path):
    cli = tool_path("conformance", "@modelcontextprotocol", "conformance", "dist", "index.js")
    baseline = SUITE / f"baseline-{revision}.yml"
    result = run_node(
        [
            "--import",
            str(SUITE / "bearer.mjs"),
            str(cli),
            "server",
            "--url",
            conformance_url,
            *RUNS[revision],
            "--expected-failures",
            str(baseline),
            "--output-dir",
            str(tmp_path),
        ],
        env={
            "MCP_BEARER_TOKEN": access_token(live_url, conformance_url),
            "MCP_BEARER_ORIGIN": live_url,
        },
        cwd=SUITE,
        timeout=300,
    )
    failing = [line for line in result.stdout.splitlines() if "✗" in line]
    summary = result.stdout[result.stdout.find("Total:") :] or result.stdout[-4000:]
    assert result.returncode == 0, "\n".join([*failing, summary, result.stderr[-2000:]])
    assert "Total:" in result.stdout, result.stdout[-2000:]
