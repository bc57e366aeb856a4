"""The emulator keeps what Intuit would remember across our restarts in its state file: grants
with their rotation, access tokens, books and ``requestid`` answers; revocations stay revoked."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from connectors.quickbooks.emulator import create_app

CLIENT = ("persist-client", "persist-secret")


def started(state_path, **options):
    app = create_app(
        base_url="http://127.0.0.1:1",
        client_id=CLIENT[0],
        client_secret=CLIENT[1],
        state_path=state_path,
        **options,
    )
    return TestClient(app)


def refresh(client, refresh_token):
    return client.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=CLIENT,
    )


def bearer(token):
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


@pytest.fixture
def state_path(tmp_path):
    return tmp_path / "var" / "emulator.json"


def test_grants_tokens_and_books_survive_a_restart(state_path):
    with started(state_path) as first:
        connected = first.post("/_emulator/tokens", json={}).json()
        realm = connected["realmId"]
        created = first.post(
            f"/v3/company/{realm}/customer?requestid=create-1",
            json={"DisplayName": "Kept Across Restarts"},
            headers=bearer(connected["access_token"]),
        )
        assert created.status_code == 200, created.text
        customer_id = created.json()["Customer"]["Id"]
    assert state_path.exists() and oct(state_path.stat().st_mode & 0o777) == "0o600"

    with started(state_path) as second:
        # The access token issued before the restart still works, and so does the data.
        read = second.get(
            f"/v3/company/{realm}/customer/{customer_id}", headers=bearer(connected["access_token"])
        )
        assert read.status_code == 200, read.text
        assert read.json()["Customer"]["DisplayName"] == "Kept Across Restarts"
        # The same requestid replays the first answer instead of creating a second customer.
        replay = second.post(
            f"/v3/company/{realm}/customer?requestid=create-1",
            json={"DisplayName": "Kept Across Restarts"},
            headers=bearer(connected["access_token"]),
        )
        assert replay.json()["Customer"]["Id"] == customer_id
        # The refresh token is still live: inside the rotation window, the same value back.
        refreshed = refresh(second, connected["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["refresh_token"] == connected["refresh_token"]
        # Rotate it: the new value is the only live one, and stays so after the next restart.
        second.post("/_emulator/clock/advance", json={"seconds": 25 * 3600})
        rotated = refresh(second, connected["refresh_token"]).json()["refresh_token"]
        assert rotated != connected["refresh_token"]

    with started(state_path) as third:
        assert refresh(third, connected["refresh_token"]).json() == {"error": "invalid_grant"}
        assert refresh(third, rotated).status_code == 200


def test_a_disconnected_company_stays_disconnected(state_path):
    with started(state_path) as first:
        connected = first.post("/_emulator/tokens", json={}).json()
        first.post(f"/_emulator/companies/{connected['realmId']}/disconnect")
    with started(state_path) as second:
        assert refresh(second, connected["refresh_token"]).json() == {"error": "invalid_grant"}
        answer = second.get(
            f"/v3/company/{connected['realmId']}/companyinfo/{connected['realmId']}",
            headers=bearer(connected["access_token"]),
        )
        assert answer.status_code == 401


def test_without_the_file_every_grant_is_gone(state_path):
    """What the platform's start-up check is for: an emulator that lost its memory."""
    with started(state_path) as first:
        connected = first.post("/_emulator/tokens", json={}).json()
    state_path.unlink()
    with started(state_path) as second:
        assert refresh(second, connected["refresh_token"]).json() == {"error": "invalid_grant"}


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 1, "companies": {}})])
def test_an_unreadable_state_file_is_set_aside_and_the_emulator_starts_empty(state_path, content):
    state_path.parent.mkdir(parents=True)
    state_path.write_text(content)
    with started(state_path) as client:
        assert client.get("/_emulator/state").json()["companies"] == []
        connected = client.post("/_emulator/tokens", json={}).json()
    kept = [p for p in state_path.parent.iterdir() if ".unreadable-" in p.name]
    assert [p.read_text() for p in kept] == [content]
    assert json.loads(state_path.read_text())["grants"], "the new state replaced it"
    with started(state_path) as again:
        assert refresh(again, connected["refresh_token"]).status_code == 200


def test_without_a_state_path_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with started(None) as client:
        client.post("/_emulator/tokens", json={})
    assert list(tmp_path.iterdir()) == []
