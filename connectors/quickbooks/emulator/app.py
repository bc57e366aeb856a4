"""`create_app()`: the emulator as one Starlette ASGI application."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import views_api, views_control, views_oauth
from .clock import Clock
from .faults import IntuitFault
from .gate import DROP_RESPONSE_SCOPE_KEY, ENDPOINT_SCOPE_KEY
from .ratelimit import ThrottleLimits
from .state import Emulator, EmulatorSettings, RequestRecord
from .tokens import TokenLifetimes

logger = logging.getLogger(__name__)


def new_intuit_tid() -> str:
    """A transaction id shaped like Intuit's (`1-<hex time>-<hex random>`)."""
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


class IntuitResponseMiddleware:
    """Adds the `intuit_tid` header to every response, logs requests, turns crashes into 500s,
    and saves the state (when kept in a file) before the answer of a request that may change it.

    It is the outermost layer, so even routing errors and unexpected exceptions carry a tid.
    """

    def __init__(self, app: ASGIApp, emulator: Emulator):
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tid = new_intuit_tid()
        status: list[int] = []
        recorded = False
        # Reads change nothing worth keeping; the authorize page issues codes on GET too.
        changes_state = (
            scope["method"] not in ("GET", "HEAD") or scope["path"] == views_oauth.AUTHORIZE_PATH
        )

        def record(status_code: int | None) -> None:
            # Recorded before the response leaves, so a test that got its answer finds the record.
            nonlocal recorded
            if recorded or scope["path"].startswith(views_control.CONTROL_PREFIX):
                return
            recorded = True
            self.emulator.record_request(
                RequestRecord(
                    method=scope["method"],
                    path=scope["path"],
                    query=dict(parse_qsl(scope.get("query_string", b"").decode())),
                    endpoint=scope.get(ENDPOINT_SCOPE_KEY),
                    status=status_code,
                    intuit_tid=tid,
                    at=self.emulator.clock.now(),
                )
            )

        async def send_with_tid(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"intuit_tid", tid.encode())],
                }
                status.append(message["status"])
                record(message["status"])
                if changes_state:
                    # Before the answer leaves: a client never holds a token the file lacks.
                    self.emulator.save()
            elif scope.get(DROP_RESPONSE_SCOPE_KEY):
                # A "drop_after" fault: headers went out, the body never does; the server
                # closes the connection when the app returns with the response incomplete.
                return
            await send(message)

        self.emulator.request_started()
        try:
            await self.app(scope, receive, send_with_tid)
        except Exception:
            if status:
                raise  # headers are out; the server closes the connection
            logger.exception("Intuit emulator failed on %s %s", scope["method"], scope["path"])
            fault = IntuitFault(
                "10000",
                "An application error has occurred while processing your request",
                "System Failure Error: the emulator crashed (see its log)",
                status=500,
                fault_type="SystemFault",
            )
            response = JSONResponse(fault.body(self.emulator.clock.now()), status_code=500)
            await response(scope, receive, send_with_tid)
        finally:
            record(None)  # no response started (client gone)
            self.emulator.request_finished()


def _routes() -> list[Route]:
    company = "/v3/company/{realm_id}"
    return [
        Route("/.well-known/openid_configuration", views_oauth.discovery, methods=["GET"]),
        Route("/.well-known/openid_sandbox_configuration", views_oauth.discovery, methods=["GET"]),
        Route(views_oauth.JWKS_PATH, views_oauth.jwks, methods=["GET"]),
        Route(views_oauth.AUTHORIZE_PATH, views_oauth.authorize, methods=["GET", "POST"]),
        Route(views_oauth.TOKEN_PATH, views_oauth.token, methods=["POST"]),
        Route(views_oauth.REVOKE_PATH, views_oauth.revoke, methods=["POST"]),
        Route(views_oauth.USERINFO_PATH, views_oauth.userinfo, methods=["GET"]),
        Route(f"{company}/companyinfo/{{company_id}}", views_api.company_info, methods=["GET"]),
        Route(f"{company}/query", views_api.query, methods=["GET", "POST"]),
        Route(f"{company}/reports/{{report}}", views_api.report, methods=["GET"]),
        Route(f"{company}/{{entity}}/{{entity_id}}", views_api.read, methods=["GET"]),
        Route(f"{company}/{{entity}}", views_api.write, methods=["POST"]),
        *views_control.routes,
    ]


def create_app(
    *,
    base_url: str,
    client_id: str,
    client_secret: str,
    redirect_uris: Sequence[str] | None = None,
    auto_approve: bool = False,
    clock: Clock | None = None,
    lifetimes: TokenLifetimes | None = None,
    throttle: ThrottleLimits | None = None,
    auth_fault_style: str = "alternate",
    state_path: Path | None = None,
) -> Starlette:
    """An emulated Intuit (OAuth + Accounting API) for one app registration.

    `base_url` is where the app will be served (its discovery document points there).
    `redirect_uris`: the registered list, matched exactly; None accepts any redirect URI.
    `state_path`: a file that keeps companies, grants and tokens across restarts (restored now,
    saved after each change); None keeps everything in memory only.
    `app.state.emulator` is the `Emulator` to steer it from tests.
    """
    settings = EmulatorSettings(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=list(redirect_uris) if redirect_uris is not None else None,
        auto_approve=auto_approve,
        auth_fault_style=auth_fault_style,
        lifetimes=lifetimes or TokenLifetimes(),
        throttle=throttle or ThrottleLimits(),
    )
    emulator = Emulator(
        base_url=base_url, settings=settings, clock=clock or Clock(), state_path=state_path
    )
    app = Starlette(
        routes=_routes(),
        middleware=[Middleware(IntuitResponseMiddleware, emulator=emulator)],
    )
    app.state.emulator = emulator
    return app
