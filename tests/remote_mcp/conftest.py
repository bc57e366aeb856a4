"""Fixtures of the remote_mcp tests: upstream MCP servers started on loopback."""

import pytest

from tests.support.upstreams import start_upstream


@pytest.fixture
def upstreams():
    """Start an upstream (``auth``: open, api_key, legacy_oauth, modern_oauth); all are stopped
    when the test ends."""
    running = []

    def start(auth="open", **options):
        upstream = start_upstream(auth, **options)
        running.append(upstream)
        return upstream

    yield start
    for upstream in running:
        upstream.stop()
