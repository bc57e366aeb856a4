"""Outbound HTTP clients keep no cookies.

The platform's clients are shared: one per process (or event loop) serves every tenant's calls
to Intuit, to remote MCP servers and their authorization servers, and to audit webhooks. A
cookie one upstream set while answering for tenant A would otherwise go along with tenant B's
next request to the same host: B's call made inside A's session there.
"""

import asyncio
import http.server
import ipaddress
import threading

import pytest

from connectors.base import guarded_http, guarded_sync_http, shared_http
from connectors.quickbooks.transport import make_async_client, make_client
from doctor.wire import doctor_http_client


class _SetsACookie(http.server.BaseHTTPRequestHandler):
    """Answers every request with a session cookie and the Cookie header it was sent."""

    def do_GET(self) -> None:
        body = (self.headers.get("Cookie") or "").encode()
        self.send_response(200)
        self.send_header("Set-Cookie", "session=tenant-a; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def cookie_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SetsACookie)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def loopback_allowed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"),)


SYNC_CLIENTS = {
    "guarded_sync_http": guarded_sync_http,
    "quickbooks make_client": make_client,
    "doctor_http_client": lambda: doctor_http_client(guarded=True),
}
ASYNC_CLIENTS = {
    "shared_http": shared_http,
    "guarded_http": guarded_http,
    "quickbooks make_async_client": make_async_client,
}


@pytest.mark.parametrize("make", SYNC_CLIENTS.values(), ids=SYNC_CLIENTS.keys())
def test_a_sync_client_sends_no_cookie_it_was_given(make, cookie_server, loopback_allowed):
    with make() as http:
        first = http.get(cookie_server)
        assert first.headers["set-cookie"].startswith("session=")  # the server did set one
        assert http.get(cookie_server).text == ""
        assert not http.cookies


@pytest.mark.parametrize("make", ASYNC_CLIENTS.values(), ids=ASYNC_CLIENTS.keys())
def test_an_async_client_sends_no_cookie_it_was_given(make, cookie_server, loopback_allowed):
    async def twice() -> str:
        http = make()
        try:
            first = await http.get(cookie_server)
            assert first.headers["set-cookie"].startswith("session=")
            second = await http.get(cookie_server)
            assert not http.cookies
            return second.text
        finally:
            await http.aclose()

    assert asyncio.run(twice()) == ""
