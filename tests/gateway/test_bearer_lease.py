"""On PostgreSQL a web process trusts its kept answers without a round trip while it holds the
lease (gateway.bearer, gateway/migrations/0002_bearer_lease.py): a change to what a check reads
commits only after every process holding it let go, and after that each reads anew; a process
that does not let go is cut off only once its own trust ran out; a lease whose session ended is
not trusted, even before the loop has read the server's goodbye."""

import asyncio
import importlib
import re
import threading
import time

import pytest
from django.db import connection
from oauth2_provider.models import AccessToken

from gateway import bearer
from tests.gateway.test_bearer_kept import _Checks, _in_thread, _token
from tests.support.sql import loop_connection_open, other_session, postgres_only

lease_migration = importlib.import_module("gateway.migrations.0002_bearer_lease")

pytestmark = [
    postgres_only("the lease is an advisory lock on PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]


def _revoke(raw: str) -> None:
    AccessToken.objects.get(token=raw).revoke()


def _holders() -> list[int]:
    """The sessions holding the lease's lock in this database."""
    with other_session() as observer:
        return [
            pid
            for (pid,) in observer.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
                "AND objid = %s AND objsubid = 1 AND mode = 'ShareLock' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                [bearer.LEASE_LOCK],
            ).fetchall()
        ]


def _waiting_for_the_lease(observer) -> list[int]:
    """The sessions waiting for an advisory lock (a writer at commit, for the lease's)."""
    return [
        pid
        for (pid,) in observer.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        ).fetchall()
    ]


async def _kept_and_leased(checks: bearer.BearerChecks, token: str):
    """The token's first check at acme's echo (its answer kept), once the lease is held."""
    first = await checks("acme", "echo", token)
    deadline = time.monotonic() + 10
    while checks._lease is None:
        assert time.monotonic() < deadline, "no lease"
        await asyncio.sleep(0.01)
    return first


@pytest.fixture
def renewals(monkeypatch):
    """Renewals after the first that took the lease wait for ``renewals.set()``."""
    gate = threading.Event()
    real = bearer.BearerChecks._renew_lease
    done = []

    async def gated(self, statements):
        if done:
            while not gate.is_set():
                await asyncio.sleep(0.005)
        await real(self, statements)
        if self._lease is not None:
            done.append(True)

    monkeypatch.setattr(bearer.BearerChecks, "_renew_lease", gated)
    return gate


def test_under_the_lease_a_kept_answer_needs_no_statement(acme):
    token = _token("bob", acme["connector"], "bob-token")
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            first = await _kept_and_leased(checks, token)
            kept = [await checks("acme", "echo", token) for _ in range(20)]
            return first, kept

    first, kept = asyncio.run(run())
    assert first.member_role == "member" and kept == [first] * 20
    assert checks.sent == ["check"]


def test_a_change_commits_only_once_the_holder_let_go(acme, renewals, monkeypatch):
    """While the process holds the lease the revocation waits, and the process rightly still
    answers with what is committed; once it renews, the revocation commits and the very next
    check refuses the token."""
    monkeypatch.setattr(bearer, "LEASE_SECONDS", 0.9)  # time for the steps below; < 1 s
    token = _token("bob", acme["connector"], "bob-token")
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            first = await _kept_and_leased(checks, token)
            with other_session() as observer:
                revoking = asyncio.ensure_future(_in_thread(lambda: _revoke(token)))
                deadline = time.monotonic() + 5
                while not await asyncio.to_thread(_waiting_for_the_lease, observer):
                    assert not revoking.done(), "the revocation committed while a process trusted"
                    assert time.monotonic() < deadline, "the revocation did not wait for the lease"
            during = await checks("acme", "echo", token)
            assert not revoking.done()
            renewals.set()
            await asyncio.wait_for(revoking, 10)
            after = await checks("acme", "echo", token)
            return first, during, after

    first, during, after = asyncio.run(run())
    assert during == first  # nothing had committed yet
    assert after.token_id is None
    # The answer during the wait was trusted; the one after it was read anew.
    assert checks.sent == ["check", "generation", "check"]


def test_a_holder_that_never_lets_go_is_cut_off_after_its_lease_ran_out(acme, renewals):
    token = _token("bob", acme["connector"], "bob-token")
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            await _kept_and_leased(checks, token)
            lease_pid = checks._lease_statements.backend_pid
            started = time.monotonic()
            await _in_thread(lambda: _revoke(token))
            waited = time.monotonic() - started
            return lease_pid, waited, await checks("acme", "echo", token)

    lease_pid, waited, after = asyncio.run(run())
    # The writer ended the session after a whole wait without a renewal, then let any lease
    # of it run out before it committed.
    wait = float(lease_migration.HOLDERS_WAIT.removesuffix("s"))
    assert wait + lease_migration.LEASE_SECONDS <= waited < 10
    assert after.token_id is None
    assert lease_pid not in _holders()


def test_a_holder_that_took_the_lock_as_the_writers_wait_ended_is_spared(acme):
    """One holder never lets go; another asks for the lock while the writer waits, gets it when
    the writer's wait ends and reads the generation, so it trusts a fresh lease. The writer ends
    the first holder's session only, and commits once the second let go at its renewal."""
    import psycopg

    from tests.gateway.test_bearer_kept import _generation

    token = _token("bob", acme["connector"], "bob-token")
    before = _generation()
    lock = f"SELECT pg_advisory_lock_shared({bearer.LEASE_LOCK})"
    times = {}
    with other_session() as stuck, other_session() as renewing:
        stuck.execute(lock)
        stuck_pid = stuck.info.backend_pid
        renewing_pid = renewing.info.backend_pid

        def renew_late():
            with other_session() as observer:  # once the writer waits (its wait ends at 1 s)
                while not _waiting_for_the_lease(observer):
                    time.sleep(0.01)
            renewing.execute(lock)  # queued behind the writer: granted when its wait ends
            times["granted"] = time.monotonic()
            times["read"] = renewing.execute(f"SELECT generation FROM {bearer.GENERATION_TABLE}")
            times["read"] = times["read"].fetchone()[0]
            time.sleep(0.3)  # trusting the generation it read, until its next renewal
            times["holders while trusting"] = _holders()
            times["let go"] = time.monotonic()
            renewing.execute("SELECT pg_advisory_unlock_all()")

        renewer = threading.Thread(target=renew_late)
        started = time.monotonic()
        renewer.start()
        _revoke(token)
        times["committed"] = time.monotonic()
        renewer.join()
        with pytest.raises(psycopg.OperationalError):
            stuck.execute("SELECT 1")
    assert times["granted"] - started >= 0.9  # it waited for the writer's wait to end (1 s)
    assert times["read"] == before  # the lease it trusted: the generation before the change
    assert renewing_pid in times["holders while trusting"]
    assert stuck_pid not in times["holders while trusting"]
    assert times["committed"] >= times["let go"]


def test_a_lease_whose_session_ended_is_not_trusted_even_before_the_loop_noticed(acme, monkeypatch):
    """The lease's session ends (its lock goes with it) and a revocation commits at once; the
    next check, made before the event loop ran again, reads anew (however long the lease had
    left)."""
    monkeypatch.setattr(bearer, "LEASE_SECONDS", 60.0)
    token = _token("bob", acme["connector"], "bob-token")
    checks = _Checks()

    def end_and_revoke(pid):
        with other_session() as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]
        _revoke(token)
        connection.close()

    async def run():
        async with loop_connection_open(checks):
            await _kept_and_leased(checks, token)
            # Blocks the loop: the loop reads nothing from the lease's session meanwhile.
            worker = threading.Thread(
                target=end_and_revoke, args=(checks._lease_statements.backend_pid,)
            )
            worker.start()
            worker.join()
            return await checks("acme", "echo", token)

    assert asyncio.run(run()).token_id is None


def test_an_idle_process_lets_go_of_the_lease(acme, monkeypatch):
    monkeypatch.setattr(bearer, "LEASE_IDLE_SECONDS", 0.2)
    token = _token("bob", acme["connector"], "bob-token")
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            await _kept_and_leased(checks, token)
            holding = _holders()
            deadline = time.monotonic() + 10
            while checks._renewing is not None:
                assert time.monotonic() < deadline, "the lease was kept"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            return holding, _holders()

    holding, after = asyncio.run(run())
    assert len(holding) == 1 and after == []


def test_a_holder_is_cut_off_only_after_its_trust_ran_out():
    """The writer's wait before it ends a holder's session is longer than a process trusts a
    lease; both sides name the same lock."""
    wait = re.fullmatch(r"(\d+)s", lease_migration.HOLDERS_WAIT)
    assert wait and float(wait[1]) > bearer.LEASE_SECONDS > bearer.LEASE_RENEW_SECONDS
    assert lease_migration.LEASE_SECONDS >= bearer.LEASE_SECONDS
    assert lease_migration.LEASE_LOCK == bearer.LEASE_LOCK < 2**31
