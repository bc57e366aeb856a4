"""Serve any ASGI app over real HTTP on a free loopback port, from a background thread.

    server = LiveServer()                 # the port is reserved now, so the URL is known...
    app = make_app(public_url=server.url)  # ...before the app is built
    server.start(app)
    ...
    server.stop()

or `with LiveServer() as server: server.start(app)`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


class LiveServer:
    """uvicorn in a daemon thread, bound to a socket reserved at construction."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        # proto=IPPROTO_TCP matters: asyncio only turns Nagle off (TCP_NODELAY) on sockets that
        # say they are TCP, and without it every response waits ~40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any, *, startup_timeout: float = 10.0, **uvicorn_options: Any):
        """Serve `app`; returns once the server accepts connections.

        uvicorn options default to: no logging configuration of its own (the test runner's
        stays), warnings only, lifespan "auto", at most 5 s to finish requests on stop, and no
        forwarded headers (the platform reads them itself, from FORWARDED_ALLOW_IPS only).
        """
        if self._server is not None:
            raise RuntimeError("this LiveServer was already started")
        options = {
            "log_config": None,
            "log_level": "warning",
            "lifespan": "auto",
            "timeout_graceful_shutdown": 5,
            # As in production (--no-proxy-headers): the platform decides whom to believe.
            "proxy_headers": False,
            **uvicorn_options,
        }
        self._server = uvicorn.Server(uvicorn.Config(app, **options))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"live-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} stopped during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start in {startup_timeout}s")
            time.sleep(0.01)
        return self

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no request is being handled. An app may still write after it answered
        (the gateway records a refusal after sending the 401): a test that flushes the database
        under such a write deadlocks on PostgreSQL."""
        deadline = time.monotonic() + timeout
        while self._server is not None and self._server.server_state.tasks:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} was still busy after {timeout}s")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for the thread, release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def serve_in_thread(app: Any, port: int = 0, lifespan: str = "on") -> Iterator[str]:
    """Yield the base URL while ``app`` is served; stop it on exit."""
    server = LiveServer(port=port)
    server.start(app, lifespan=lifespan)
    try:
        yield server.url
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
