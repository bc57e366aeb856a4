"""Logs are JSON lines with a request id, and never carry a token."""

import io
import json
import logging

import httpx
import pytest

from tests.support.flow import OAuthClient, mcp_post
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_response_carries_a_request_id(live_url, acme):
    given = "trace-0123456789"
    assert (
        httpx.get(f"{live_url}/healthz", headers={"X-Request-ID": given}).headers["x-request-id"]
        == given
    )
    generated = httpx.post(acme["connector"].url, json={}).headers["x-request-id"]
    assert len(generated) == 32
    forged = httpx.get(f"{live_url}/healthz", headers={"X-Request-ID": "bad id; drop table"})
    assert forged.headers["x-request-id"] != "bad id; drop table"


@pytest.fixture
def platform_log():
    """What the configured console handler (settings.LOGGING) writes, as text: the handler
    itself, with its formatter and level, only its stream redirected."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    root = logging.getLogger()
    buffer = io.StringIO()
    previous_stream, previous_level = handler.setStream(buffer), root.level
    root.setLevel(logging.DEBUG)  # everything a logger lets through reaches the handler
    try:
        yield buffer
    finally:
        root.setLevel(previous_level)
        handler.setStream(previous_stream)


def test_log_lines_are_json_and_hold_no_token(live_url, acme, platform_log):
    client = OAuthClient.register(live_url, method="client_secret_post")
    tokens = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)
    fail = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "fail", "arguments": {"message": "boom"}},
    }
    assert mcp_post(acme["connector"].url, tokens["access_token"], fail).status_code == 200
    assert client.refresh(tokens["refresh_token"]).status_code == 200

    lines = platform_log.getvalue().splitlines()
    assert lines, "nothing was logged"
    assert any("boom" in line for line in lines), "the failed tool call was not logged"
    secrets = [tokens["access_token"], tokens["refresh_token"], client.client_secret]
    for line in lines:
        parsed = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(parsed)
        for secret in secrets:
            assert secret not in line


def test_the_access_log_holds_no_query_string_or_path_secret(live_url, acme, platform_log):
    """The Intuit callback's code and a set-password link's token, as the access log of a real
    server writes them through the configured handler."""
    access = logging.getLogger("uvicorn.access")
    level = access.level
    access.setLevel(logging.INFO)
    try:
        httpx.get(
            f"{live_url}/upstream/quickbooks/callback?code=INTUITCODE123&state=st4te&realmId=9"
        )
        httpx.get(f"{live_url}/accounts/set-password/Mg/cv8xyz-SETPASSWORDTOKEN/", timeout=60)
        httpx.get(f"{live_url}/dashboard/invitations/WzEsIm4iXQ:INVITESIGNATURE/", timeout=60)
        httpx.get(f"{live_url}/no-such-page/?token=QUERYSECRET", timeout=60)
    finally:
        access.setLevel(level)
    stream = platform_log
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    assert any("/upstream/quickbooks/callback" in line["message"] for line in lines), text
    assert any("/accounts/set-password/" in line["message"] for line in lines), text
    assert any("/dashboard/invitations/" in line["message"] for line in lines), text
    secrets = ("INTUITCODE123", "SETPASSWORDTOKEN", "INVITESIGNATURE", "QUERYSECRET", "realmId")
    for secret in secrets:
        assert secret not in text
