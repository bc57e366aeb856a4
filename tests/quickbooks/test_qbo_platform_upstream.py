"""Upstream token handling seen through tool calls: rotation, one refresh for many callers,
crash safety, errors, encryption keys. Real HTTP to the emulator and to the live platform."""

import threading
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from config import crypto
from connectors.quickbooks import client as qbo
from tests.support.quickbooks import advance, call
from upstream import clock, refresh, services
from upstream.models import UpstreamConnection

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = 3600
DAY = 86400


def stored_refresh_token(ctx) -> str:
    connection = UpstreamConnection.objects.get(pk=ctx["connection"].pk)
    return crypto.decrypt(connection.refresh_token_encrypted)


def test_rotation_stores_the_new_refresh_token_and_never_sends_the_old_one(qbo_connector):
    ctx = qbo_connector
    first = stored_refresh_token(ctx)
    advance(ctx, HOUR + 60)  # access token expired, still inside the rotation window
    assert not call(ctx)["isError"]
    assert stored_refresh_token(ctx) == first  # Intuit returned the same value

    advance(ctx, 25 * HOUR)  # past the rotation window: Intuit hands out a new value
    assert not call(ctx)["isError"]
    rotated = stored_refresh_token(ctx)
    assert rotated != first
    # The old value is dead at Intuit at once; we never send it again.
    with pytest.raises(qbo.InvalidGrant):
        services.provider_for(ctx["connection"])._oauth().refresh(first)
    refreshes = ctx["emulator"].counters["token.refresh"]
    advance(ctx, HOUR + 60)
    assert not call(ctx)["isError"]
    assert ctx["emulator"].counters["token.refresh"] == refreshes + 1
    assert UpstreamConnection.objects.get(pk=ctx["connection"].pk).status == "active"


def test_many_parallel_calls_with_an_expired_token_cause_exactly_one_refresh(qbo_connector):
    ctx = qbo_connector
    # Intuit's own limits (10 concurrent, 10 per second) are not what this test is about.
    ctx["emulator"].configure(throttle_per_second=None, throttle_concurrent=None)
    advance(ctx, HOUR + 60)
    before = ctx["emulator"].counters["token.refresh"]
    results = []

    def one_call():
        results.append(call(ctx))

    threads = [threading.Thread(target=one_call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    errors = [r["content"][0]["text"] for r in results if r["isError"]]
    assert not errors, errors
    assert ctx["emulator"].counters["token.refresh"] == before + 1


def test_a_second_refresh_waits_for_the_lease_holder_instead_of_refreshing_again(
    qbo_connector, monkeypatch
):
    """Deterministic form of the race above: the first refresh is held inside the provider call
    (lease taken) until the second has tried to claim the lease; without the lease the second
    would refresh too, every run."""
    ctx = qbo_connector
    advance(ctx, HOUR + 60)
    connection_id = ctx["connection"].pk
    real_provider_for, real_claim = refresh.provider_for, refresh._claim_lease
    inside, release, second_tried = threading.Event(), threading.Event(), threading.Event()
    entered: list[str] = []

    class HeldProvider:
        def __init__(self, provider):
            self.provider = provider

        def refresh(self, refresh_token):
            entered.append(threading.current_thread().name)
            inside.set()
            release.wait(30)
            return self.provider.refresh(refresh_token)

    def claim(*args, **kwargs):
        claimed = real_claim(*args, **kwargs)
        if threading.current_thread().name == "second":
            second_tried.set()
        return claimed

    monkeypatch.setattr(refresh, "provider_for", lambda c: HeldProvider(real_provider_for(c)))
    monkeypatch.setattr(refresh, "_claim_lease", claim)
    results = {}

    def refresh_now():
        connection = refresh.upstream_connection_refresh(connection_id=connection_id)
        results[threading.current_thread().name] = crypto.decrypt(connection.access_token_encrypted)

    first = threading.Thread(target=refresh_now, name="first")
    first.start()
    assert inside.wait(30), "the first refresh never reached the provider"
    second = threading.Thread(target=refresh_now, name="second")
    second.start()
    assert second_tried.wait(30), "the second refresh never tried to claim the lease"
    release.set()
    first.join(60)
    second.join(60)
    assert entered == ["first"], "the second caller refreshed while the first held the lease"
    assert results["first"] == results["second"]


def test_a_refresh_holds_no_pooled_database_connection_while_intuit_answers(
    qbo_connector, monkeypatch
):
    """A worker's threads share the pool: a thread waiting for Intuit has handed its
    connection back (with a pool of 8 and 16 threads, half the threads waited for one)."""
    from django.db import connection as db

    if not db.settings_dict.get("OPTIONS", {}).get("pool"):
        pytest.skip("needs PostgreSQL with the connection pool")
    ctx = qbo_connector
    advance(ctx, HOUR + 60)
    real_provider_for = refresh.provider_for
    held: list[bool] = []

    class WatchedProvider:
        def __init__(self, provider):
            self.provider = provider

        def refresh(self, refresh_token):
            held.append(db.connection is not None)
            return self.provider.refresh(refresh_token)

    monkeypatch.setattr(refresh, "provider_for", lambda c: WatchedProvider(real_provider_for(c)))
    fresh = refresh.upstream_connection_refresh(connection_id=ctx["connection"].pk)
    assert held == [False]
    assert fresh.status == "active"


def test_crash_between_the_answer_and_our_commit(qbo_connector, monkeypatch, settings):
    """What a crash after Intuit answered but before our commit does, and what it cannot do.

    Inside the rotation window Intuit answers with the stored refresh token's own value, so the
    connection survives a crash there: the lease of the dead refresh expires and the next
    refresh spends the stored (still valid) token. Only a crash during the one refresh that
    crosses the rotation window loses the new value; then the next refresh gets invalid_grant
    once, the connection goes to needs_reauth, and no dead token is ever sent again.
    """
    ctx = qbo_connector
    settings.UPSTREAM_LEASE_SECONDS = 1
    original_finish = refresh._finish

    def crash_once(connection_id, owner, **fields):
        if "refresh_token_encrypted" in fields:
            monkeypatch.setattr(refresh, "_finish", original_finish)
            raise SystemExit("process killed after the provider answered")
        return original_finish(connection_id, owner, **fields)

    # Inside the rotation window: survives.
    monkeypatch.setattr(refresh, "_finish", crash_once)
    advance(ctx, HOUR + 60)
    with pytest.raises(SystemExit):
        refresh.upstream_connection_refresh(connection_id=ctx["connection"].pk)
    advance(ctx, 2)  # the dead holder's lease expires
    assert not call(ctx)["isError"]
    assert UpstreamConnection.objects.get(pk=ctx["connection"].pk).status == "active"

    # Across the window: the rotated value is lost with the crash; the loss is detected once.
    monkeypatch.setattr(refresh, "_finish", crash_once)
    advance(ctx, 25 * HOUR)
    with pytest.raises(SystemExit):
        refresh.upstream_connection_refresh(connection_id=ctx["connection"].pk)
    advance(ctx, 2)
    counters = ctx["emulator"].counters
    invalid_before = counters["token.refresh.invalid_grant"]
    result = call(ctx)
    assert result["isError"]
    assert "reconnect" in result["content"][0]["text"].lower()
    connection = UpstreamConnection.objects.get(pk=ctx["connection"].pk)
    assert connection.status == "needs_reauth"
    assert counters["token.refresh.invalid_grant"] == invalid_before + 1  # detected once
    refreshes = counters["token.refresh"]
    assert call(ctx)["isError"]
    assert counters["token.refresh"] == refreshes  # no second try
    assert counters["token.refresh.invalid_grant"] == invalid_before + 1


def test_throttling_is_a_clear_tool_error_and_keeps_the_connection(qbo_connector):
    ctx = qbo_connector
    ctx["emulator"].inject_fault(
        "companyinfo",
        status=429,
        count=1,
        body={
            "Fault": {
                "Error": [{"Message": "ThrottleExceeded", "code": "3001"}],
                "type": "ThrottleExceeded",
            }
        },
    )
    result = call(ctx)
    assert result["isError"]
    assert "throttl" in result["content"][0]["text"].lower()
    assert UpstreamConnection.objects.get(pk=ctx["connection"].pk).status == "active"
    assert not call(ctx)["isError"]


def test_token_endpoint_outage_keeps_tokens_and_recovers(qbo_connector):
    ctx = qbo_connector
    before = stored_refresh_token(ctx)
    advance(ctx, HOUR + 60)
    ctx["emulator"].inject_fault("token", status=503, count=1)
    result = call(ctx)
    assert result["isError"]
    assert "unavailable" in result["content"][0]["text"].lower()
    connection = UpstreamConnection.objects.get(pk=ctx["connection"].pk)
    assert connection.status == "error" and connection.failure_count == 1
    assert stored_refresh_token(ctx) == before
    assert not call(ctx)["isError"]
    assert UpstreamConnection.objects.get(pk=ctx["connection"].pk).status == "active"


def test_api_outage_and_slow_answers_are_tool_errors(qbo_connector, monkeypatch):
    ctx = qbo_connector
    ctx["emulator"].inject_fault("companyinfo", status=500, count=5)
    result = call(ctx)
    assert result["isError"]
    assert "unavailable" in result["content"][0]["text"].lower()
    ctx["emulator"].clear_faults()
    assert not call(ctx)["isError"]


def test_company_disconnecting_the_app_ends_in_needs_reauth_with_the_reconnect_link(
    qbo_connector, live_url, mailoutbox
):
    ctx = qbo_connector
    ctx["emulator"].disconnect(ctx["issued"]["realmId"])
    advance(ctx, HOUR + 60)
    result = call(ctx)
    assert result["isError"]
    text = result["content"][0]["text"]
    assert f"{live_url}/dashboard/connectors/{ctx['connector'].pk}/connect" in text
    assert UpstreamConnection.objects.get(pk=ctx["connection"].pk).status == "needs_reauth"
    assert call(ctx)["isError"]


def test_invalid_query_grammar_is_refused_before_sending(qbo_connector):
    ctx = qbo_connector
    before = ctx["emulator"].counters.get("api.query", 0)
    result = call(ctx, "query", {"query": "SELECT * FROM Customer WHERE A = '1' OR B = '2'"})
    assert result["isError"]
    assert "invalid query" in result["content"][0]["text"].lower()
    assert ctx["emulator"].counters.get("api.query", 0) == before
    assert UpstreamConnection.objects.get(pk=ctx["connection"].pk).status == "active"


def test_key_rotation_keeps_every_connection_usable(qbo_connector, settings):
    ctx = qbo_connector
    old_keys = list(settings.UPSTREAM_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.UPSTREAM_ENCRYPTION_KEYS = [new_key, *old_keys]
    call_command("upstream_reencrypt", verbosity=0)
    settings.UPSTREAM_ENCRYPTION_KEYS = [new_key]  # the old key is gone
    assert not call(ctx)["isError"]
    advance(ctx, HOUR + 60)  # a refresh decrypts and re-encrypts under the new key
    assert not call(ctx)["isError"]
    raw = UpstreamConnection.objects.get(pk=ctx["connection"].pk).refresh_token_encrypted
    assert Fernet(new_key.encode()).decrypt(raw.encode())


def test_the_access_token_expiry_is_kept_ahead_of_use(qbo_connector):
    connection = UpstreamConnection.objects.get(pk=qbo_connector["connection"].pk)
    assert connection.access_expires_at - clock.now() > timedelta(minutes=50)
