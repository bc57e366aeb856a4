"""What a database dump yields: no MCP token in plain text, and the double refresh still works."""

import stat
import subprocess
import sys

import pytest
from django.db import connection

from authserver.models import RefreshGraceAnswer
from authserver.tasks import housekeeping_run
from tests.support.flow import OAuthClient, mcp_post
from tests.support.oauth import Browser

pytestmark = pytest.mark.django_db(transaction=True)


def _dump() -> str:
    """Every row of every table as text, as a backup would hold it."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(rows)


def test_a_database_dump_after_connect_and_refreshes_holds_no_usable_token(
    live_url, acme, qbo_emulator, settings
):
    from tenants.services import connector_create

    callback = f"{live_url}/upstream/quickbooks/callback"
    qbo_emulator.emulator.configure(redirect_uris=[callback], auto_approve=True)
    qbo_emulator.point_platform_at(settings)
    connector = connector_create(tenant=acme["tenant"], kind="quickbooks", slug="qbo")
    client = OAuthClient.register(live_url, method="client_secret_post")
    browser = Browser("bob", "bob-pass-123", also_visits=(qbo_emulator.base_url,))
    first = client.tokens(browser, connector.url)
    rotated = client.refresh(first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    # The same refresh again inside the grace window (a client refreshing from two nodes):
    # answered with the same pair, although the database holds no token to read back.
    replayed = client.refresh(first["refresh_token"])
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == rotated.json()
    second = rotated.json()
    assert mcp_post(connector.url, second["access_token"]).status_code == 200

    dump = _dump()
    for name, value in [
        ("first access token", first["access_token"]),
        ("first refresh token", first["refresh_token"]),
        ("rotated access token", second["access_token"]),
        ("rotated refresh token", second["refresh_token"]),
    ]:
        assert value not in dump, f"the {name} is stored in plain text"


def test_the_sealed_grace_answer_ends_with_the_grace_window(live_url, acme, settings):
    client = OAuthClient.register(live_url)
    tokens = client.tokens(Browser("bob", "bob-pass-123"), acme["connector"].url)
    assert client.refresh(tokens["refresh_token"]).status_code == 200
    assert RefreshGraceAnswer.objects.count() == 1

    RefreshGraceAnswer.objects.update(expires="2000-01-01T00:00:00Z")
    replay = client.refresh(tokens["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    housekeeping_run()
    assert not RefreshGraceAnswer.objects.exists()


def test_embedded_var_dir_and_its_secrets_are_private(tmp_path):
    var = tmp_path / "var"
    code = (
        "import django; django.setup();"
        "from django.core.management import call_command; call_command('migrate', verbosity=0)"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": ":".join(sys.path),
            "VAR_DIR": str(var),
        },
        timeout=120,
    )
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    for name in ("secret_key", "upstream_key", "platform.sqlite3"):
        mode = stat.S_IMODE((var / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
