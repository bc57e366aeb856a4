"""On PostgreSQL the gateway's own connection keeps the answers it read, with the bearer checks'
generation (gateway.bearer, gateway/migrations/0001_bearer_generation.py): while nothing
changed it reads only the generation, and any committed change to what a check reads makes the
very next check read the answer anew."""

import asyncio
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application

from authserver.models import TokenAudience
from gateway import bearer
from gateway.bearer import GENERATION_TABLE, BearerChecks, bearer_check
from tenants.models import Connector, Membership, Tenant
from tenants.services import member_add
from tests.support.sql import loop_connection_open, other_session, postgres_only

pytestmark = [
    postgres_only("answers are kept on the gateway's own PostgreSQL connection"),
    pytest.mark.django_db(transaction=True),
]


class _Checks(BearerChecks):
    """BearerChecks that record the statements sent on the loop's own connection."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    async def _loop_postgres_rows(self, name, params):
        self.sent.append(name.decode().removeprefix("gateway_bearer_"))
        return await super()._loop_postgres_rows(name, params)


def _token(username: str, connector: Connector, raw: str) -> str:
    user = get_user_model().objects.get(username=username)
    client = Application.objects.create(
        name=raw,
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris="https://claude.ai/api/mcp/auth_callback",
    )
    access = AccessToken.objects.create(
        user=user,
        application=client,
        token=raw,
        scope="mcp",
        expires=timezone.now() + timedelta(hours=1),
        resource=[connector.url],
    )
    TokenAudience.objects.create(connector=connector, access_token=access)
    return raw


def _in_thread(work):
    """Run ``work`` (the ORM: committed at once) in a worker thread, as another process
    would, and close that thread's connection."""

    def run():
        try:
            return work()
        finally:
            connection.close()

    return asyncio.to_thread(run)


def _generation() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT generation FROM {GENERATION_TABLE}")
        return cursor.fetchone()[0]


def _truncate_memberships(acme) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Membership._meta.db_table}")


def _connector(acme):
    return Connector.objects.filter(pk=acme["connector"].pk)


def _bob_token():
    return AccessToken.objects.filter(token="bob-token")


def _bob():
    return get_user_model().objects.filter(username="bob")


def _bob_member(acme):
    return Membership.objects.filter(tenant=acme["tenant"], user__username="bob")


# Each a committed change to one thing a check reads, for bob's token at acme's echo.
CHANGES = {
    "token revoked": lambda acme: _bob_token().get().revoke(),
    "token expiry": lambda acme: _bob_token().update(expires=timezone.now() - timedelta(seconds=1)),
    "token scope": lambda acme: _bob_token().update(scope="mcp other"),
    "token moved to another connector": lambda acme: TokenAudience.objects.filter(
        access_token__token="bob-token"
    ).update(connector=acme["other_connector"]),
    "client id": lambda acme: Application.objects.filter(name="bob-token").update(
        client_id="renamed"
    ),
    "user deactivated": lambda acme: _bob().update(is_active=False),
    "username": lambda acme: _bob().update(username="robert"),
    "member's role": lambda acme: _bob_member(acme).update(role="admin"),
    "member removed": lambda acme: _bob_member(acme).delete(),
    "memberships truncated": _truncate_memberships,
    "connector disabled": lambda acme: _connector(acme).update(enabled=False),
    "connector's tool policy": lambda acme: _connector(acme).update(
        tool_policy={"roles": {"member": {"deny": ["echo"]}}}
    ),
    "connector's settings": lambda acme: _connector(acme).update(settings={"greeting": "hi"}),
    "connector's mode": lambda acme: _connector(acme).update(mode=Connector.Mode.SHARED),
    "connector's audit arguments": lambda acme: _connector(acme).update(
        audit_arguments=Connector.AuditArguments.FULL
    ),
    "connector renamed": lambda acme: _connector(acme).update(slug="renamed"),
    "tenant disabled": lambda acme: Tenant.objects.filter(pk=acme["tenant"].pk).update(
        enabled=False
    ),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_to_what_the_check_reads_bites_on_the_next_check(acme, change):
    token = _token("bob", acme["connector"], "bob-token")
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            first = await checks("acme", "echo", token)
            kept = await checks("acme", "echo", token)
            await _in_thread(lambda: CHANGES[change](acme))
            after = await checks("acme", "echo", token)
            expected = await _in_thread(lambda: bearer_check("acme", "echo", token))
            return first, kept, after, expected

    first, kept, after, expected = asyncio.run(run())
    assert first.member_role == "member" and kept == first
    assert after == expected and after != first
    # The second check read the generation alone; after the change the answer was read anew.
    assert checks.sent == ["check", "generation", "generation", "check"]


def test_a_kept_answer_is_read_without_the_join(acme):
    """With the token table locked by another session, the kept answer still comes (only the
    generation's row is read); a token not kept waits for the lock."""
    token = _token("bob", acme["connector"], "bob-token")
    other = _token("alice", acme["connector"], "alice-token")
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            first = await checks("acme", "echo", token)
            with other_session() as locker:
                locker.execute("BEGIN")
                locker.execute(f"LOCK TABLE {AccessToken._meta.db_table} IN ACCESS EXCLUSIVE MODE")
                kept = await asyncio.wait_for(checks("acme", "echo", token), 10)
                waiting = asyncio.ensure_future(checks("acme", "echo", other))
                await asyncio.sleep(0.2)
                assert not waiting.done(), "a token not kept was answered under the lock"
                locker.execute("COMMIT")
            return first, kept, await asyncio.wait_for(waiting, 10)

    first, kept, other_answer = asyncio.run(run())
    assert kept == first and first.member_role == "member"
    assert other_answer.member_role == "admin"


def test_only_complete_answers_are_kept(acme):
    """A token whose user is no member (or an unknown token) is read anew every time: the
    membership a new row could add is then seen at once."""
    token = _token("eve", acme["connector"], "eve-token")
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            outsider = await checks("acme", "echo", token)
            unknown = await checks("acme", "echo", "not-a-token")
            await _in_thread(
                lambda: member_add(
                    tenant=Tenant.objects.get(slug="acme"),
                    username="eve",
                )
            )
            member = await checks("acme", "echo", token)
            return outsider, unknown, member

    outsider, unknown, member = asyncio.run(run())
    assert outsider.token_id is not None and outsider.member_role is None
    assert unknown.token_id is None
    assert member.member_role == "member"
    assert checks.sent == ["check", "check", "check"]


def test_kept_answers_are_bounded(acme, monkeypatch):
    monkeypatch.setattr(bearer, "KEPT_MAX", 2)
    tokens = [_token("bob", acme["connector"], f"bob-token-{n}") for n in range(3)]
    checks = _Checks()

    async def run():
        async with loop_connection_open(checks):
            for token in tokens:
                await checks("acme", "echo", token)
            return [key[0] for key in checks._kept]

    kept = asyncio.run(run())
    assert kept == [bearer._params("acme", "echo", t)[0] for t in tokens[1:]]


def test_inserts_leave_the_generation_and_changes_move_it_once(acme):
    """Issuing tokens (inserts) keeps every kept answer; a transaction that changes many rows
    moves the generation once, to a value it never had."""
    before = _generation()
    _token("bob", acme["connector"], "bob-token")
    assert _generation() == before
    seen = {before}
    with transaction.atomic():
        Connector.objects.filter(tenant=acme["tenant"]).update(enabled=False)
        get_user_model().objects.update(is_active=False)
    seen.add(_generation())
    Connector.objects.update(enabled=True)
    seen.add(_generation())
    assert len(seen) == 3


def test_every_column_the_check_reads_is_watched():
    """The update triggers name every column the check's SQL reads (selects, joins or
    filters on), table by table; deletes and truncates of its tables are watched too."""
    sql = bearer._compiled("postgresql").sql
    models = bearer._models()
    read: dict[str, set[str]] = {}
    for alias, column in re.findall(r'\b(\w+)\."(\w+)"', sql):
        read.setdefault(models[alias]._meta.db_table, set()).add(column)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname LIKE %s",
            ["gateway_bearer_generation_bump_%"],
        )
        triggers = cursor.fetchall()
    watched: dict[str, set[str]] = {}
    events: dict[str, set[str]] = {}
    for table, name, definition in triggers:
        events.setdefault(table, set()).add(name.rsplit("_", 1)[1])
        if name.endswith("_update"):
            watched[table] = set(re.findall(r"\bold\.\"?(\w+)", definition.lower()))
    assert set(read) == set(watched)
    for table, columns in read.items():
        assert columns <= watched[table], table
        assert events[table] == {"update", "delete", "truncate"}, table


def test_a_writer_holds_the_generation_only_while_it_commits(acme):
    """A transaction that changed a watched row and is still open holds no lock on the
    generation: another writer commits without waiting for it (the triggers run at commit)."""
    with other_session() as open_writer:
        open_writer.execute("BEGIN")
        open_writer.execute(
            f"UPDATE {Connector._meta.db_table} SET enabled = false WHERE id = %s",
            [acme["connector"].pk],
        )
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            get_user_model().objects.filter(username="bob").update(is_active=False)
        open_writer.execute("COMMIT")
    assert not Connector.objects.get(pk=acme["connector"].pk).enabled
