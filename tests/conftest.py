"""Shared fixtures: a live platform server on loopback, tenants, members and connectors."""

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test.utils import override_settings

from connectors.quickbooks import client as qbo
from connectors.quickbooks.emulator import create_app
from tests.support.emulator import (
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EMULATOR_REDIRECT_URI,
    RunningEmulator,
)
from tests.support.live import LiveServer, free_port

TEST_KINDS = [
    "tests.support.kinds.echo_kind",
    "tests.support.kinds.catalog_kind",
    "tests.support.kinds.conformance_kind",
]


@pytest.fixture(scope="session")
def platform_port():
    return free_port()


@pytest.fixture(scope="session", autouse=True)
def platform_settings(platform_port):
    """PUBLIC_URL is the live server's origin, and the test connector kind is installed."""
    public_url = f"http://127.0.0.1:{platform_port}"
    override = override_settings(
        PUBLIC_URL=public_url,
        CSRF_TRUSTED_ORIGINS=[public_url],
        CONNECTOR_KINDS=[*settings.CONNECTOR_KINDS, *TEST_KINDS],
        OAUTH2_PROVIDER={**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": public_url},
        CIMD_ALLOW_HTTP_LOOPBACK=True,
        # Tests flush the audit buffer themselves (or fill a batch); no timer races them.
        AUDIT_FLUSH_SECONDS=3600,
        # Sign-in speed, not strength, matters in tests.
        PASSWORD_HASHERS=[
            "django.contrib.auth.hashers.MD5PasswordHasher",
            "authserver.hashers.ClientSecretHasher",
        ],
    )
    override.enable()
    yield public_url
    override.disable()


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield


@pytest.fixture(scope="session")
def _live_app(platform_settings, platform_port, django_db_setup, django_db_blocker):
    from config.asgi import PlatformApplication

    with django_db_blocker.unblock():
        server = LiveServer(port=platform_port)
        server.start(PlatformApplication(), lifespan="on")
        try:
            yield server
        finally:
            server.stop()
        _close_server_thread_connections()


def _close_server_thread_connections():
    """The server's worker threads keep database connections open; PostgreSQL will not drop
    the test database while they exist."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def live_url(_live_app, transactional_db):
    """The base URL of a live platform (uvicorn, the real ASGI app) on committed data."""
    from events.audit import audit_buffer
    from events.services import call_counter

    call_counter.drain()  # counts of an earlier test name rows that no longer exist
    audit_buffer.drain()
    yield _live_app.url
    _live_app.wait_idle()  # before the database is flushed under a request still writing
    call_counter.drain()
    audit_buffer.drain()


@pytest.fixture
def acme(transactional_db):
    """Tenant acme with admin alice, member bob and an echo connector; outsider eve elsewhere."""
    from tenants.services import connector_create, member_add, tenant_create

    tenant = tenant_create(slug="acme", name="Acme Inc")
    member_add(tenant=tenant, username="alice", password="alice-pass-123", role="admin")
    member_add(tenant=tenant, username="bob", password="bob-pass-123")
    other = tenant_create(slug="globex", name="Globex")
    member_add(tenant=other, username="eve", password="eve-pass-123")
    connector = connector_create(tenant=tenant, kind="echo", slug="echo")
    other_connector = connector_create(tenant=other, kind="echo", slug="echo")
    return {
        "tenant": tenant,
        "connector": connector,
        "other": other,
        "other_connector": other_connector,
    }


# --- The Intuit emulator ------------------------------------------------------------------


@pytest.fixture(scope="session")
def qbo_emulator_server() -> Iterator[RunningEmulator]:
    server = LiveServer()
    app = create_app(
        base_url=server.url,
        client_id=EMULATOR_CLIENT_ID,
        client_secret=EMULATOR_CLIENT_SECRET,
        redirect_uris=[EMULATOR_REDIRECT_URI],
    )
    server.start(app, lifespan="off")
    try:
        yield RunningEmulator(base_url=server.url, emulator=app.state.emulator)
    finally:
        server.stop()


@pytest.fixture
def qbo_emulator(qbo_emulator_server: RunningEmulator) -> RunningEmulator:
    """The live emulator, reset to a clean state for this test."""
    qbo_emulator_server.emulator.wait_idle()
    qbo_emulator_server.emulator.reset()
    qbo.clear_endpoint_cache()
    return qbo_emulator_server


@pytest.fixture
def quickbooks_on_emulator(qbo_emulator, settings) -> RunningEmulator:
    """The emulator, and the platform pointed at it."""
    qbo_emulator.point_platform_at(settings)
    return qbo_emulator


@pytest.fixture
def world(db, quickbooks_on_emulator, settings):
    """Two tenants with connectors, members, connections, clients and events (dashboard, API)."""
    from tests.support.world import build_world

    # The test client builds the middleware per client; scanning every app's static files
    # each time would cost more than the request itself.
    settings.WHITENOISE_USE_FINDERS = False
    return build_world(quickbooks_on_emulator)


@pytest.fixture
def shared_clock(tmp_path, settings):
    """One upstream clock for this process and the platform processes a test starts (web,
    workers): each reads its offset from the file (UPSTREAM_CLOCK_OFFSET_FILE)."""
    from upstream import clock

    path = tmp_path / "clock-offset"
    path.write_text("0")
    settings.UPSTREAM_CLOCK_OFFSET_FILE = str(path)
    yield path
    clock.reset()
