"""X-Forwarded-For decides the address rate limits and the trace see: believed from the
configured proxies only, and then only its right-most hop that is not one of them."""

import httpx
import pytest

from events.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT = {
    "client_name": "Flood",
    "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
    "token_endpoint_auth_method": "none",
}


def _register(live_url, forwarded_for: str) -> httpx.Response:
    return httpx.post(
        f"{live_url}/register",
        json=CLIENT,
        headers={"X-Forwarded-For": forwarded_for},
        timeout=60,
    )


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(live_url, settings):
    # The proxy is elsewhere; this test client (127.0.0.1) is just someone on the internet.
    settings.FORWARDED_ALLOW_IPS = ["10.9.9.9"]
    settings.DCR_RATE_LIMIT = 5
    statuses = [_register(live_url, f"198.51.100.{n}").status_code for n in range(8)]
    assert statuses == [201] * 5 + [429] * 3
    addresses = set(Event.objects.filter(kind="oauth.register").values_list("ip", flat=True))
    assert addresses == {"127.0.0.1"}


def test_behind_the_trusted_proxy_the_right_most_untrusted_hop_is_the_client(live_url, settings):
    # The proxy (here: loopback) appends the address it saw; what is left of it is whatever the
    # client wrote, so varying it neither changes the recorded address nor escapes the limit.
    settings.FORWARDED_ALLOW_IPS = ["127.0.0.1"]
    settings.DCR_RATE_LIMIT = 5
    statuses = [_register(live_url, f"198.51.100.{n}, 203.0.113.7").status_code for n in range(8)]
    assert statuses == [201] * 5 + [429] * 3
    addresses = set(Event.objects.filter(kind="oauth.register").values_list("ip", flat=True))
    assert addresses == {"203.0.113.7"}


def test_trusting_every_peer_is_refused_at_startup(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": ":".join(sys.path),
            "VAR_DIR": str(tmp_path),
            "FORWARDED_ALLOW_IPS": "*",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FORWARDED_ALLOW_IPS" in result.stderr
