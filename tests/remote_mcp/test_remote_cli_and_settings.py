"""Creating remote_mcp connectors: the operator CLI and the settings schema's checks."""

import ipaddress
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from config import crypto
from tenants.models import Connector, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_tenant():
    return Tenant.objects.create(slug="acme", name="Acme")


def run(*args) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_connector_create_with_upstream_options(acme_tenant, settings):
    lines = run(
        "connector", "create", "acme", "remote_mcp", "--slug", "notes",
        "--upstream-url", "https://notes.example.com/mcp",
        "--upstream-auth", "header", "--header-name", "X-API-Key",
        "--header-value", "sk-123", "--mode", "shared",
    )  # fmt: skip
    connector = Connector.objects.get(slug="notes")
    assert lines[-1] == f"{settings.PUBLIC_URL}/t/acme/notes/mcp"
    assert connector.settings["upstream_url"] == "https://notes.example.com/mcp"
    assert connector.settings["upstream_auth"] == "header"
    sealed = connector.settings["header_value"]
    assert "sk-123" not in sealed and crypto.decrypt(sealed.removeprefix("sealed:")) == "sk-123"


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "upstream_url: is required"),
        (("--upstream-url", "ftp://x.example/mcp"), "upstream_url: must be an absolute"),
        (("--upstream-url", "http://notes.example.com/mcp"), "upstream_url: must be an https URL"),
        (
            ("--upstream-url", "https://x.example/mcp", "--upstream-auth", "basic"),
            "upstream_auth: must be one of none, header, oauth",
        ),
        (
            ("--upstream-url", "https://x.example/mcp", "--header-name", "Bad Header:"),
            "header_name: must be an HTTP header name",
        ),
        (
            ("--upstream-url", "https://x.example/mcp", "--timeout-seconds", "soon"),
            "timeout_seconds: must be a number of seconds",
        ),
    ],
)
def test_bad_settings_are_one_line_errors(acme_tenant, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("connector", "create", "acme", "remote_mcp", *args)
    assert not Connector.objects.exists()


def test_plain_http_only_for_loopback_where_allowed(acme_tenant, settings):
    settings.REMOTE_MCP_ALLOW_HTTP_LOOPBACK = False
    with pytest.raises(CommandError, match="must be an https URL"):
        call_command(
            "connector", "create", "acme", "remote_mcp", "--upstream-url", "http://127.0.0.1:9/mcp"
        )
    settings.REMOTE_MCP_ALLOW_HTTP_LOOPBACK = True
    run("connector", "create", "acme", "remote_mcp", "--upstream-url", "http://127.0.0.1:9/mcp")
    with pytest.raises(CommandError, match="must be an https URL"):
        call_command(
            "connector", "create", "acme", "remote_mcp", "--slug", "other",
            "--upstream-url", "http://10.0.0.5/mcp",
        )  # fmt: skip


def test_allow_http_loopback_is_refused_in_production():
    from django.core.exceptions import ImproperlyConfigured

    from connectors.remote_mcp.kind import ALLOW_HTTP_LOOPBACK

    assert ALLOW_HTTP_LOOPBACK.read("", embedded=True) is True
    assert ALLOW_HTTP_LOOPBACK.read("", embedded=False) is False
    with pytest.raises(ImproperlyConfigured, match="embedded default"):
        ALLOW_HTTP_LOOPBACK.read("true", embedded=False)


def test_api_creates_and_updates_a_remote_connector(client, acme_tenant):
    from tenants.services import member_add

    member_add(tenant=acme_tenant, username="alice", password="alice-pass-123", role="admin")
    client.login(username="alice", password="alice-pass-123")
    created = client.post(
        "/api/v1/tenants/acme/connectors/",
        {
            "kind": "remote_mcp",
            "slug": "notes",
            "mode": "shared",
            "settings": {
                "upstream_url": "https://notes.example.com/mcp",
                "upstream_auth": "header",
                "header_name": "X-API-Key",
                "header_value": "sk-secret",
            },
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["settings"]["header_value"] is True  # set, never shown
    assert "sk-secret" not in created.content.decode()
    url = f"/api/v1/connectors/{body['id']}/"
    updated = client.patch(
        url, {"settings": {"allowed_tools": "whoami add_note"}}, content_type="application/json"
    )
    assert updated.status_code == 200, updated.content
    assert updated.json()["settings"]["allowed_tools"] == "whoami add_note"
    connector = Connector.objects.get(pk=body["id"])
    assert crypto.decrypt(connector.settings["header_value"].removeprefix("sealed:")) == "sk-secret"
    refused = client.patch(
        url, {"settings": {"upstream_auth": "magic"}}, content_type="application/json"
    )
    assert refused.status_code == 400
    assert "upstream_auth" in refused.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data",  # cloud metadata (link-local)
        "https://10.0.0.5/mcp",
        "https://172.16.3.4/mcp",
        "https://192.168.1.10/mcp",
        "https://100.100.100.200/mcp",  # shared address space (another cloud's metadata)
        "https://[fd00:ec2::254]/mcp",  # unique local (fc00::/7)
        "https://[::ffff:10.0.0.5]/mcp",  # IPv4-mapped private
        "https://0.0.0.0/mcp",
    ],
)
def test_private_and_metadata_addresses_are_refused(acme_tenant, url):
    with pytest.raises(CommandError, match="is not a public address"):
        call_command("connector", "create", "acme", "remote_mcp", "--upstream-url", url)
    assert not Connector.objects.exists()


def test_names_are_checked_by_the_address_they_resolve_to(acme_tenant, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ()  # production: loopback is not allowed either
    for url in ("https://localhost/mcp", "https://[::1]/mcp", "https://127.0.0.1/mcp"):
        with pytest.raises(CommandError, match="is not a public address"):
            call_command("connector", "create", "acme", "remote_mcp", "--upstream-url", url)
    # An operator allows an internal network by name.
    settings.OUTBOUND_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"),)
    run("connector", "create", "acme", "remote_mcp", "--upstream-url", "https://127.0.0.1/mcp")


def test_outbound_allowed_networks_setting():
    from connectors.base import OUTBOUND_ALLOWED_NETWORKS

    assert OUTBOUND_ALLOWED_NETWORKS.read("", embedded=False) == ()
    assert ipaddress.ip_address("127.0.0.1") in OUTBOUND_ALLOWED_NETWORKS.read("", embedded=True)[0]
    assert OUTBOUND_ALLOWED_NETWORKS.read("10.1.2.0/24, fd00::/8", embedded=False) == (
        ipaddress.ip_network("10.1.2.0/24"),
        ipaddress.ip_network("fd00::/8"),
    )
