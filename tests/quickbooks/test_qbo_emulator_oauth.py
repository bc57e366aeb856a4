"""The emulator's OAuth side, over real HTTP: discovery, authorize, token, rotation, revoke."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectors.quickbooks.transport import shared_ssl_context

DAY = 24 * 3600
ACCOUNTING = "com.intuit.quickbooks.accounting"

TLS = shared_ssl_context()  # one CA bundle load for the whole module


@pytest.fixture
def http(qbo_emulator):
    with httpx.Client(base_url=qbo_emulator.base_url, verify=TLS) as client:
        yield client


def authorize_params(emu, **overrides):
    params = {
        "client_id": emu.client_id,
        "redirect_uri": emu.redirect_uri,
        "response_type": "code",
        "scope": f"{ACCOUNTING} openid email",
        "state": "state-123",
    }
    params.update(overrides)
    return params


def callback_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def approve(http, emu, **overrides) -> dict[str, str]:
    form = {**authorize_params(emu, **overrides), "decision": "approve", "realm_id": "new"}
    return callback_params(http.post("/connect/oauth2", data=form))


def exchange(http, emu, code, *, auth=None, redirect_uri=None):
    return http.post(
        "/oauth2/v1/tokens/bearer",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri or emu.redirect_uri,
        },
        auth=auth or (emu.client_id, emu.client_secret),
    )


def refresh(http, emu, refresh_token):
    return http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(emu.client_id, emu.client_secret),
    )


def company_info(http, realm_id, access_token):
    return http.get(
        f"/v3/company/{realm_id}/companyinfo/{realm_id}",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )


# --- discovery ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.well-known/openid_configuration", "/.well-known/openid_sandbox_configuration"]
)
def test_discovery_points_at_the_emulator_endpoints(http, qbo_emulator, path):
    response = http.get(path)

    assert response.status_code == 200
    assert response.headers["intuit_tid"]
    document = response.json()
    base = qbo_emulator.base_url
    assert document["authorization_endpoint"] == f"{base}/connect/oauth2"
    assert document["token_endpoint"] == f"{base}/oauth2/v1/tokens/bearer"
    assert document["revocation_endpoint"] == f"{base}/v2/oauth2/tokens/revoke"
    assert document["userinfo_endpoint"] == f"{base}/v1/openid_connect/userinfo"
    assert document["issuer"].startswith(base)
    assert http.get(urlsplit(document["jwks_uri"]).path).status_code == 200


def test_every_response_has_its_own_intuit_tid_even_errors(http):
    tids = [
        http.get("/no/such/path").headers["intuit_tid"],
        http.post("/oauth2/v1/tokens/bearer", data={}).headers["intuit_tid"],
        http.get("/v3/company/1/companyinfo/1").headers["intuit_tid"],
    ]
    assert all(tids) and len(set(tids)) == 3


# --- authorize ----------------------------------------------------------------------------


def test_authorize_shows_a_consent_page_with_connect_and_cancel(http, qbo_emulator):
    response = http.get("/connect/oauth2", params=authorize_params(qbo_emulator))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'value="approve">Connect</button>' in response.text
    assert 'value="deny">Cancel</button>' in response.text
    assert 'method="post"' in response.text


def test_approving_redirects_with_code_state_and_realm(http, qbo_emulator):
    params = approve(http, qbo_emulator)

    assert params["state"] == "state-123"
    assert params["code"]
    assert params["realmId"].isdigit() and len(params["realmId"]) == 16
    assert params["realmId"] in qbo_emulator.emulator.companies


def test_cancel_redirects_with_access_denied_and_state(http, qbo_emulator):
    form = {**authorize_params(qbo_emulator), "decision": "deny"}

    params = callback_params(http.post("/connect/oauth2", data=form))

    assert params == {"error": "access_denied", "state": "state-123"}


def test_auto_approve_flag_skips_the_page(http, qbo_emulator):
    response = http.get("/connect/oauth2", params=authorize_params(qbo_emulator, auto_approve="1"))

    params = callback_params(response)
    assert params["code"] and params["state"] == "state-123"
    assert urlsplit(response.headers["location"]).path == "/upstream/quickbooks/callback"


def test_auto_approve_setting_skips_the_page(http, qbo_emulator):
    qbo_emulator.emulator.configure(auto_approve=True)

    params = callback_params(http.get("/connect/oauth2", params=authorize_params(qbo_emulator)))

    assert params["code"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "someone-else"},
        {"redirect_uri": "http://127.0.0.1:8000/upstream/quickbooks/callback/extra"},
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": ""},
    ],
)
def test_unknown_client_or_redirect_uri_gets_an_error_page_not_a_redirect(
    http, qbo_emulator, overrides
):
    response = http.get("/connect/oauth2", params=authorize_params(qbo_emulator, **overrides))

    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid email"}, "invalid_scope"),
    ],
)
def test_bad_request_parameters_redirect_with_an_oauth_error(http, qbo_emulator, overrides, error):
    response = http.get(
        "/connect/oauth2", params=authorize_params(qbo_emulator, auto_approve="1", **overrides)
    )

    assert callback_params(response) == {"error": error, "state": "state-123"}


# --- token endpoint -----------------------------------------------------------------------


def test_code_exchange_with_basic_auth_returns_intuit_token_response(http, qbo_emulator):
    params = approve(http, qbo_emulator)

    response = exchange(http, qbo_emulator, params["code"])

    assert response.status_code == 200
    assert response.headers["intuit_tid"]
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] == 100 * DAY
    assert body["access_token"] and body["refresh_token"]
    header, payload, signature = body["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["realmid"] == params["realmId"]
    assert claims["aud"] == [qbo_emulator.client_id]
    assert company_info(http, params["realmId"], body["access_token"]).status_code == 200


def test_code_exchange_with_client_secret_post(http, qbo_emulator):
    params = approve(http, qbo_emulator, scope=ACCOUNTING)

    response = http.post(
        "/oauth2/v1/tokens/bearer",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": qbo_emulator.redirect_uri,
            "client_id": qbo_emulator.client_id,
            "client_secret": qbo_emulator.client_secret,
        },
    )

    assert response.status_code == 200
    assert "id_token" not in response.json()  # no openid scope asked


@pytest.mark.parametrize(
    "auth",
    [("test-intuit-client-id", "wrong-secret"), ("other-client", "test-intuit-client-secret")],
)
def test_bad_client_credentials_get_invalid_client(http, qbo_emulator, auth):
    params = approve(http, qbo_emulator)

    response = exchange(http, qbo_emulator, params["code"], auth=auth)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}
    assert response.headers["intuit_tid"]


def test_missing_client_credentials_get_invalid_client(http, qbo_emulator):
    response = http.post("/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token"})

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}


def test_a_code_works_once(http, qbo_emulator):
    code = approve(http, qbo_emulator)["code"]

    assert exchange(http, qbo_emulator, code).status_code == 200
    second = exchange(http, qbo_emulator, code)

    assert second.status_code == 400
    assert second.json() == {"error": "invalid_grant"}


def test_a_code_expires_after_ten_minutes(http, qbo_emulator):
    fresh = approve(http, qbo_emulator)["code"]
    stale = approve(http, qbo_emulator)["code"]

    qbo_emulator.emulator.clock.advance(9 * 60)
    assert exchange(http, qbo_emulator, fresh).status_code == 200
    qbo_emulator.emulator.clock.advance(61)

    assert exchange(http, qbo_emulator, stale).json() == {"error": "invalid_grant"}


def test_a_code_needs_the_same_redirect_uri(http, qbo_emulator):
    code = approve(http, qbo_emulator)["code"]

    response = exchange(http, qbo_emulator, code, redirect_uri="http://127.0.0.1:8000/other")

    assert response.json() == {"error": "invalid_grant"}


def test_unknown_grant_type_is_refused(http, qbo_emulator):
    response = http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "password"},
        auth=(qbo_emulator.client_id, qbo_emulator.client_secret),
    )

    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


# --- refresh rotation and lifetimes -------------------------------------------------------


def test_refresh_inside_the_window_returns_the_same_refresh_token(http, qbo_emulator):
    tokens = qbo_emulator.connect()
    qbo_emulator.emulator.clock.advance(23 * 3600)

    body = refresh(http, qbo_emulator, tokens["refresh_token"]).json()

    assert body["refresh_token"] == tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert qbo_emulator.emulator.counters_snapshot()["token.refresh"] == 1


def test_refresh_after_the_window_rotates_and_kills_the_old_value_at_once(http, qbo_emulator):
    tokens = qbo_emulator.connect()
    realm = tokens["realmId"]
    qbo_emulator.emulator.clock.advance(DAY + 1)

    rotated = refresh(http, qbo_emulator, tokens["refresh_token"]).json()
    reuse_of_old = refresh(http, qbo_emulator, tokens["refresh_token"])

    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert reuse_of_old.status_code == 400
    assert reuse_of_old.json() == {"error": "invalid_grant"}
    # The new value starts its own window: using it right away returns it unchanged.
    again = refresh(http, qbo_emulator, rotated["refresh_token"]).json()
    assert again["refresh_token"] == rotated["refresh_token"]
    assert company_info(http, realm, again["access_token"]).status_code == 200
    assert qbo_emulator.emulator.counters_snapshot()["token.refresh.rotated"] == 1


def test_rotation_window_is_configurable(http, qbo_emulator):
    qbo_emulator.emulator.configure(refresh_rotation_window=60)
    tokens = qbo_emulator.connect()
    qbo_emulator.emulator.clock.advance(61)

    body = refresh(http, qbo_emulator, tokens["refresh_token"]).json()

    assert body["refresh_token"] != tokens["refresh_token"]


def test_access_token_expires_after_an_hour(http, qbo_emulator):
    tokens = qbo_emulator.connect()
    qbo_emulator.emulator.clock.advance(3599)
    assert company_info(http, tokens["realmId"], tokens["access_token"]).status_code == 200

    qbo_emulator.emulator.clock.advance(2)

    response = company_info(http, tokens["realmId"], tokens["access_token"])
    assert response.status_code == 401


def test_refresh_token_expiry_rolls_forward_with_each_use(http, qbo_emulator):
    tokens = qbo_emulator.connect()
    current = tokens["refresh_token"]
    for _ in range(3):  # 297 days in all, never 100 without a refresh
        qbo_emulator.emulator.clock.advance(99 * DAY)
        body = refresh(http, qbo_emulator, current).json()
        assert body["x_refresh_token_expires_in"] == 100 * DAY
        current = body["refresh_token"]

    qbo_emulator.emulator.clock.advance(100 * DAY + 1)

    assert refresh(http, qbo_emulator, current).json() == {"error": "invalid_grant"}


def test_refresh_token_dies_five_years_after_consent_whatever_the_use(http, qbo_emulator):
    qbo_emulator.emulator.clock.freeze()  # exact second counts below
    tokens = qbo_emulator.connect()
    current = tokens["refresh_token"]
    elapsed = 0
    five_years = 5 * 365 * DAY
    while elapsed + 90 * DAY < five_years:
        qbo_emulator.emulator.clock.advance(90 * DAY)
        elapsed += 90 * DAY
        body = refresh(http, qbo_emulator, current).json()
        # Near the cap, the announced lifetime shrinks to what is left of the five years.
        assert body["x_refresh_token_expires_in"] == min(100 * DAY, five_years - elapsed)
        current = body["refresh_token"]

    qbo_emulator.emulator.clock.advance(five_years - elapsed)

    assert refresh(http, qbo_emulator, current).json() == {"error": "invalid_grant"}


# --- revoke and userinfo ------------------------------------------------------------------


@pytest.mark.parametrize("which", ["refresh_token", "access_token"])
def test_revoke_with_either_token_kills_the_whole_grant(http, qbo_emulator, which):
    tokens = qbo_emulator.connect()
    other = qbo_emulator.connect(tokens["realmId"])  # a second grant stays alive

    response = http.post(
        "/v2/oauth2/tokens/revoke",
        json={"token": tokens[which]},
        auth=(qbo_emulator.client_id, qbo_emulator.client_secret),
    )

    assert response.status_code == 200
    assert refresh(http, qbo_emulator, tokens["refresh_token"]).json() == {"error": "invalid_grant"}
    assert company_info(http, tokens["realmId"], tokens["access_token"]).status_code == 401
    assert company_info(http, other["realmId"], other["access_token"]).status_code == 200


def test_revoke_needs_client_auth_and_accepts_unknown_tokens(http, qbo_emulator):
    denied = http.post("/v2/oauth2/tokens/revoke", json={"token": "x"}, auth=("a", "b"))
    unknown = http.post(
        "/v2/oauth2/tokens/revoke",
        json={"token": "never-issued"},
        auth=(qbo_emulator.client_id, qbo_emulator.client_secret),
    )

    assert denied.status_code == 401 and denied.json() == {"error": "invalid_client"}
    assert unknown.status_code == 200


def test_company_disconnect_kills_every_grant_of_that_company(http, qbo_emulator):
    tokens = qbo_emulator.connect()

    revoked = http.post(f"/_emulator/companies/{tokens['realmId']}/disconnect").json()

    assert revoked == {"revoked_grants": 1}
    assert refresh(http, qbo_emulator, tokens["refresh_token"]).json() == {"error": "invalid_grant"}


def test_userinfo_returns_claims_for_openid_tokens_only(http, qbo_emulator):
    with_openid = qbo_emulator.connect(scopes=(ACCOUNTING, "openid", "email"))
    without = qbo_emulator.connect(scopes=(ACCOUNTING,))

    def userinfo(token):
        return http.get("/v1/openid_connect/userinfo", headers={"Authorization": f"Bearer {token}"})

    claims = userinfo(with_openid["access_token"]).json()
    assert claims["sub"] and claims["email"] == "sandbox.admin@example.com"
    assert userinfo(without["access_token"]).status_code == 403
    assert userinfo("bogus").status_code == 401


# --- control endpoints ----------------------------------------------------------------------


def test_control_endpoints_move_the_clock_inject_faults_and_report_counters(http, qbo_emulator):
    tokens = qbo_emulator.connect()
    before = qbo_emulator.emulator.clock.now()

    moved = http.post("/_emulator/clock/advance", json={"seconds": 3601}).json()
    injected = http.post("/_emulator/faults", json={"endpoint": "token", "status": 503})
    faulted = refresh(http, qbo_emulator, tokens["refresh_token"])
    recovered = refresh(http, qbo_emulator, tokens["refresh_token"])
    counters = http.get("/_emulator/counters").json()
    state = http.get("/_emulator/state").json()

    assert moved["now"] > before.isoformat()
    assert injected.status_code == 201
    assert faulted.status_code == 503 and recovered.status_code == 200
    assert counters["faults.injected"] == 1 and counters["token.refresh"] == 1
    assert "client_secret" not in state["settings"]
    assert http.post("/_emulator/faults", json={"kind": "nonsense"}).status_code == 400

    assert http.post("/_emulator/reset").status_code == 200
    assert http.get("/_emulator/counters").json() == {}
    assert qbo_emulator.emulator.companies == {}


def test_control_endpoint_issues_tokens_and_configures(http, qbo_emulator):
    tokens = http.post("/_emulator/tokens", json={}).json()
    config = http.post("/_emulator/config", json={"auth_fault_style": "xml"})
    bad = http.post("/_emulator/config", json={"no_such_setting": 1})

    assert tokens["realmId"] and tokens["access_token"]
    assert config.json()["settings"]["auth_fault_style"] == "xml"
    assert bad.status_code == 400
