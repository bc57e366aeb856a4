"""The kind contract (connectors/base.py) as the platform serves it: settings schema checked on
every save, secrets sealed at rest and opened for tools, env settings, and a tool source."""

import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env
from connectors.base import EnvSetting, SettingsError, SettingsSchema, kinds_env_settings
from tenants.models import Connector
from tests.support.flow import OAuthClient, mcp_post
from tests.support.kinds import echo_kind
from tests.support.oauth import Browser

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at"),
]


def _rpc(url, token, method, params=None):
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    response = mcp_post(url, token, payload)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def test_the_api_refuses_settings_outside_the_schema(client, acme):
    client.login(username="alice", password="alice-pass-123")
    url = f"/api/v1/connectors/{acme['connector'].pk}/"
    for bad, field in [
        ({"style": "shouting"}, "style: must be one of plain, loud"),
        ({"homepage": "ftp://example.com"}, "homepage: must be an absolute"),
        ({"colour": "red"}, "colour: unknown setting"),
        ({"style": True}, "style: must be one of"),
    ]:
        answer = client.patch(url, {"settings": bad}, content_type="application/json")
        assert answer.status_code == 400, answer.content
        assert field in answer.json()["detail"]
    unchanged = {"style": "plain", "homepage": ""}
    assert Connector.objects.get(pk=acme["connector"].pk).settings == unchanged

    created = client.post(
        "/api/v1/tenants/acme/connectors/",
        {"kind": "echo", "slug": "echo2", "settings": {"style": "whisper"}},
        content_type="application/json",
    )
    assert created.status_code == 400 and "style" in created.json()["detail"]
    assert not Connector.objects.filter(slug="echo2").exists()  # nothing half-made


def test_a_secret_is_sealed_at_rest_hidden_in_answers_and_opened_for_tools(client, live_url, acme):
    client.login(username="alice", password="alice-pass-123")
    connector = acme["connector"]
    url = f"/api/v1/connectors/{connector.pk}/"
    saved = client.patch(
        url,
        {"settings": {"api_key": "sk-live-0123456789", "homepage": "https://acme.example"}},
        content_type="application/json",
    )
    assert saved.status_code == 200, saved.content
    assert saved.json()["settings"] == {
        "style": "plain",
        "homepage": "https://acme.example",
        "api_key": True,
    }
    stored = Connector.objects.get(pk=connector.pk).settings
    assert "sk-live-0123456789" not in str(stored)
    assert stored["api_key"].startswith("sealed:")

    # Saving other settings without the secret keeps it.
    client.patch(url, {"settings": {"style": "loud"}}, content_type="application/json")
    assert Connector.objects.get(pk=connector.pk).settings["api_key"] == stored["api_key"]

    # The dashboard form never shows it either.
    page = client.get(f"/dashboard/connectors/{connector.pk}/").content.decode()
    assert "sk-live-0123456789" not in page and stored["api_key"] not in page

    token = OAuthClient.register(live_url).tokens(Browser("bob", "bob-pass-123"), connector.url)
    result = _rpc(connector.url, token["access_token"], "tools/call", {"name": "whoami"})
    assert result["structuredContent"]["api_key_length"] == len("sk-live-0123456789")
    assert result["structuredContent"]["homepage"] == "https://acme.example"
    echoed = _rpc(
        connector.url,
        token["access_token"],
        "tools/call",
        {"name": "echo", "arguments": {"text": "hi"}},
    )
    assert echoed["content"][0]["text"] == "HI"  # style loud, as saved


def test_the_dashboard_form_is_built_from_the_schema_and_checks_it(client, acme):
    client.login(username="alice", password="alice-pass-123")
    connector = acme["connector"]
    page = client.get(f"/dashboard/connectors/{connector.pk}/").content.decode()
    assert 'name="setting_style"' in page and 'name="setting_api_key"' in page
    assert 'type="password"' in page
    answer = client.post(
        f"/dashboard/connectors/{connector.pk}/update",
        {"name": "Echo", "mode": "per_user", "setting_style": "loud", "setting_homepage": "nope"},
        follow=True,
    )
    assert "homepage: must be an absolute" in answer.content.decode()
    assert Connector.objects.get(pk=connector.pk).settings["style"] == "plain"


def test_a_tool_source_lists_and_calls_tools_per_connector(live_url, acme):
    from tenants.services import connector_create

    first = connector_create(tenant=acme["tenant"], kind="catalog", slug="cat-a")
    second = connector_create(
        tenant=acme["tenant"], kind="catalog", slug="cat-b", settings={"tools": "gamma"}
    )
    client = OAuthClient.register(live_url)
    browser = Browser("bob", "bob-pass-123")
    token_a = client.tokens(browser, first.url)["access_token"]
    token_b = client.tokens(browser, second.url)["access_token"]

    listed_a = _rpc(first.url, token_a, "tools/list")
    listed_b = _rpc(second.url, token_b, "tools/list")
    assert [t["name"] for t in listed_a["tools"]] == ["alpha", "beta"]
    assert [t["name"] for t in listed_b["tools"]] == ["gamma"]

    called = _rpc(second.url, token_b, "tools/call", {"name": "gamma", "arguments": {"n": 3}})
    assert called["content"][0]["text"] == "gamma(3) for bob on cat-b"
    refused = _rpc(second.url, token_b, "tools/call", {"name": "alpha", "arguments": {}})
    assert refused["isError"] is True and "Unknown tool: alpha" in refused["content"][0]["text"]


def test_env_settings_are_read_from_the_environment_or_a_file_and_checked(tmp_path):
    secret_file = tmp_path / "greeting"
    secret_file.write_text("Ahoy\n")
    environ = {"ECHO_GREETING_FILE": str(secret_file)}

    def read(name):
        saved = dict(os.environ)
        os.environ.update(environ)
        try:
            return env(name)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    values = kinds_env_settings(["tests.support.kinds.echo_kind"], read=read, embedded=False)
    assert values == {"ECHO_GREETING": "Ahoy"}

    strict = EnvSetting(
        "X_MODE", default="a", check=lambda value, embedded: None if value == "a" else "bad"
    )
    assert strict.read(None, embedded=False) == "a"
    with pytest.raises(ImproperlyConfigured, match="X_MODE: bad"):
        strict.read("b", embedded=False)
    with pytest.raises(ImproperlyConfigured, match="X_PORT"):
        EnvSetting("X_PORT", default="1", parse=int).read("many", embedded=True)


def test_the_schema_needs_required_fields_and_never_stores_a_secret_unsealed():
    from connectors.base import TextSetting, UrlSetting

    schema = SettingsSchema(fields=(UrlSetting("server_url", required=True), TextSetting("note")))
    with pytest.raises(SettingsError) as error:
        schema.clean({"note": "x"})
    assert error.value.errors == {"server_url": "is required"}
    assert schema.clean({"server_url": "https://mcp.example/mcp"}) == {
        "server_url": "https://mcp.example/mcp",
        "note": "",
    }
    with pytest.raises(ImproperlyConfigured):
        echo_kind.settings_schema.clean({"api_key": "k"})  # no seal function: refused loudly
