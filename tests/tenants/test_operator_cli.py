"""The operator CLI: exact forms, the printed connector URL, one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tenants.models import Connector, Membership, Tenant

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


@pytest.mark.django_db
def test_create_tenant_member_and_connector(settings):
    run("tenant", "create", "acme", "--name", "Acme Inc")
    run("tenant", "add-member", "acme", "bob", "--password", "pw-123456", "--email", "b@x.io")
    run("tenant", "add-member", "acme", "alice", "--role", "admin")
    lines = run("connector", "create", "acme", "echo", "--slug", "crm", "--mode", "shared")

    assert Tenant.objects.get(slug="acme").name == "Acme Inc"
    bob = Membership.objects.get(tenant__slug="acme", user__username="bob")
    assert bob.role == "member" and bob.user.check_password("pw-123456")
    alice = Membership.objects.get(tenant__slug="acme", user__username="alice")
    assert alice.role == "admin" and not alice.user.has_usable_password()
    connector = Connector.objects.get(tenant__slug="acme", slug="crm")
    assert connector.mode == "shared" and connector.kind == "echo"
    assert lines[-1] == f"{settings.PUBLIC_URL}/t/acme/crm/mcp"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (("tenant", "add-member", "nope", "bob"), "unknown tenant 'nope'"),
        (("connector", "create", "nope", "echo"), "unknown tenant 'nope'"),
        (("connector", "create", "acme", "salesforce"), "unknown connector kind 'salesforce'"),
        (("connector", "create", "acme", "echo", "--slug", "Bad Slug"), "invalid connector slug"),
        (("tenant", "create", "acme"), "tenant 'acme' already exists"),
        (("tenant", "create", "Acme!"), "invalid tenant slug"),
    ],
)
def test_bad_input_is_a_one_line_error(args, message):
    Tenant.objects.create(slug="acme", name="Acme")
    with pytest.raises(CommandError, match=message):
        call_command(*args)


@pytest.mark.django_db
def test_duplicate_connector_slug_is_refused():
    run("tenant", "create", "acme")
    run("connector", "create", "acme", "echo")
    with pytest.raises(CommandError, match="connector 'echo' already exists in tenant 'acme'"):
        call_command("connector", "create", "acme", "echo")


def test_the_real_command_line_exits_non_zero_with_one_line(tmp_path):
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "EXTRA_CONNECTOR_KINDS": "tests.support.kinds.echo_kind",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    ok = subprocess.run(
        [*manage, "tenant", "create", "acme"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert ok.returncode == 0
    created = subprocess.run(
        [*manage, "connector", "create", "acme", "echo"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0
    assert created.stdout.strip().splitlines()[-1] == "http://127.0.0.1:8000/t/acme/echo/mcp"
    again = subprocess.run(
        [*manage, "tenant", "create", "acme"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert again.returncode != 0
    assert again.stderr.strip() == "CommandError: tenant 'acme' already exists"


@pytest.fixture
def acme_cli(db):
    run("tenant", "create", "acme", "--name", "Acme Inc")
    run("tenant", "add-member", "acme", "alice", "--role", "admin", "--password", "alice-pass-123")
    return Tenant.objects.get(slug="acme")


def _alice():
    return Membership.objects.select_related("user").get(
        tenant__slug="acme", user__username="alice"
    )


def test_add_member_without_a_role_does_not_demote_the_only_admin(acme_cli):
    assert run("tenant", "add-member", "acme", "alice") == ["alice is admin of acme"]
    assert _alice().role == "admin"


def test_add_member_refuses_a_role_change_without_update(acme_cli):
    with pytest.raises(CommandError, match="pass --update to change their role"):
        call_command("tenant", "add-member", "acme", "alice", "--role", "member")
    assert _alice().role == "admin"
    # Even with --update, the tenant keeps an admin (the dashboard's rule).
    with pytest.raises(CommandError, match="keeps at least one admin"):
        call_command("tenant", "add-member", "acme", "alice", "--role", "member", "--update")
    run("tenant", "add-member", "acme", "bob", "--role", "admin")
    run("tenant", "add-member", "acme", "alice", "--role", "member", "--update")
    assert _alice().role == "member"


def test_add_member_refuses_a_password_or_email_change_without_update(acme_cli):
    with pytest.raises(CommandError, match="pass --update to change their password"):
        call_command("tenant", "add-member", "acme", "alice", "--password", "another-pass-456")
    assert _alice().user.check_password("alice-pass-123")
    with pytest.raises(CommandError, match="pass --update to change their email"):
        call_command("tenant", "add-member", "acme", "alice", "--email", "a@example.com")
    run("tenant", "add-member", "acme", "alice", "--password", "another-pass-456", "--update")
    assert _alice().user.check_password("another-pass-456")


@pytest.mark.parametrize(
    "args, message",
    [
        (("--password", "short"), "too short"),
        (("--password", "x"), "too short"),
        (("--password", "password123"), "too common"),
        (("--email", "not-an-email"), "valid email"),
        (("--email", "a" * 250 + "@x.io"), "email"),
    ],
)
def test_add_member_input_follows_the_dashboards_rules(acme_cli, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("tenant", "add-member", "acme", "newcomer", *args)
    assert not Membership.objects.filter(user__username="newcomer").exists()
    # The same rules refuse a weak password for an existing user, even with --update.
    with pytest.raises(CommandError):
        call_command("tenant", "add-member", "acme", "alice", *args, "--update")
    assert _alice().user.check_password("alice-pass-123")


def test_long_names_and_bad_usernames_are_refused(acme_cli):
    with pytest.raises(CommandError, match="at most 200 characters"):
        call_command("tenant", "create", "long", "--name", "x" * 300)
    assert not Tenant.objects.filter(slug="long").exists()
    with pytest.raises(CommandError, match="invalid username"):
        call_command("tenant", "add-member", "acme", "bad name!")
    with pytest.raises(CommandError, match="at most 200 characters"):
        call_command("connector", "create", "acme", "echo", "--name", "y" * 300)


def test_list_commands(acme_cli, settings):
    run("tenant", "create", "globex")
    run("tenant", "add-member", "acme", "bob", "--email", "bob@example.com")
    run("connector", "create", "acme", "echo", "--slug", "crm", "--mode", "shared")
    assert run("tenant", "list") == ["acme\tAcme Inc\tenabled", "globex\tglobex\tenabled"]
    assert run("member", "list", "acme") == ["alice\t-\tadmin", "bob\tbob@example.com\tmember"]
    assert run("connector", "list") == [
        f"acme/crm\techo\tshared\tenabled\t{settings.PUBLIC_URL}/t/acme/crm/mcp"
    ]
    assert run("connector", "list", "globex") == []
    with pytest.raises(CommandError, match="unknown tenant 'nope'"):
        call_command("member", "list", "nope")
