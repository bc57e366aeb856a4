"""Two tenants with everything the dashboard and the API show: members, an operator, echo and
QuickBooks connectors, upstream connections, OAuth clients with live tokens, events and
audit records.

Names are chosen to be unmistakable in a page or a JSON answer, so a test can assert that
one tenant's data never shows up for another tenant's people.
"""

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken

from authserver.models import TokenAudience
from events.models import AuditRecord
from events.services import event_record
from identity.services import provider_save
from tenants.models import Membership
from tenants.services import connector_create, member_add, tenant_create

PASSWORDS = {
    "olga": "olga-pass-123",
    "alice": "alice-pass-123",
    "bob": "bob-pass-123",
    "eve": "eve-pass-123",
}
# What must never appear to the people of the other tenant.
ACME_MARKS = ["Acme Inc", "/t/acme/", "alice-client", "bob-client", '"alice"', '"bob"']
GLOBEX_MARKS = ["Globex Corp", "/t/globex/", "eve-client", '"eve"']
# acme's identity provider's client secret: never in any page or answer, to anyone.
ACME_IDP_SECRET = "acme-idp-client-secret-value"
# What a member of acme must not see of another member.
ALICE_PRIVATE = ["alice-client"]


@dataclass
class World:
    acme: object
    globex: object
    echo: object
    books: object
    globex_echo: object
    globex_books: object
    users: dict
    memberships: dict
    apps: dict
    tokens: dict
    connections: dict


def _client(name: str, user, connector) -> tuple[Application, AccessToken]:
    app = Application.objects.create(
        name=name,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://claude.ai/api/mcp/auth_callback",
    )
    now = timezone.now()
    access = AccessToken.objects.create(
        user=user,
        application=app,
        token=f"access-{name}",
        expires=now + timedelta(hours=8),
        scope="mcp",
        resource=[connector.url],
    )
    refresh = RefreshToken.objects.create(
        user=user,
        application=app,
        token=f"refresh-{name}",
        access_token=access,
        resource=[connector.url],
    )
    TokenAudience.objects.create(connector=connector, access_token=access)
    TokenAudience.objects.create(connector=connector, refresh_token=refresh)
    for kind in ("oauth.authorize", "oauth.token"):
        event_record(kind=kind, connector=connector, client_id=app.client_id, user_id=user.pk)
    AuditRecord.objects.create(
        created=now,
        tenant_id=connector.tenant_id,
        connector=connector,
        user=user,
        username=user.username,
        client_id=app.client_id,
        tool=f"{name}.lookup",
        outcome=AuditRecord.Outcome.OK,
        latency_ms=12,
        arguments_kept="digest",
        arguments={"keys": ["q"], "sha256": "0" * 64},
    )
    return app, access


def _connection(emulator, connector, user):
    return emulator.store_connection(connector=connector, user=user)[0]


def build_world(emulator) -> World:
    User = get_user_model()
    acme = tenant_create(slug="acme", name="Acme Inc")
    globex = tenant_create(slug="globex", name="Globex Corp")
    alice = member_add(tenant=acme, username="alice", password=PASSWORDS["alice"], role="admin")
    bob = member_add(tenant=acme, username="bob", password=PASSWORDS["bob"])
    eve = member_add(tenant=globex, username="eve", password=PASSWORDS["eve"])
    olga = User.objects.create_superuser("olga", "olga@example.com", PASSWORDS["olga"])
    echo = connector_create(tenant=acme, kind="echo", slug="echo")
    books = connector_create(tenant=acme, kind="quickbooks", slug="books")
    globex_echo = connector_create(tenant=globex, kind="echo", slug="echo")
    globex_books = connector_create(tenant=globex, kind="quickbooks", slug="books")
    provider_save(
        tenant=acme,
        name="Acme Okta",
        issuer="https://acme.okta.example",
        client_id="acme-platform",
        client_secret=ACME_IDP_SECRET,
        allowed_domains=["acme.example"],
        role_rules=[{"claim": "groups", "value": "acme-admins", "role": "admin"}],
        default_role="member",
    )
    users = {"olga": olga, "alice": alice.user, "bob": bob.user, "eve": eve.user}
    apps, tokens = {}, {}
    for name, user, connector in (
        ("alice-client", alice.user, echo),
        ("bob-client", bob.user, echo),
        ("eve-client", eve.user, globex_echo),
    ):
        apps[name], tokens[name] = _client(name, user, connector)
    connections = {
        "bob": _connection(emulator, books, bob.user),
        "alice": _connection(emulator, books, alice.user),
        "eve": _connection(emulator, globex_books, eve.user),
    }
    return World(
        acme=acme,
        globex=globex,
        echo=echo,
        books=books,
        globex_echo=globex_echo,
        globex_books=globex_books,
        users=users,
        memberships={m.user.username: m for m in Membership.objects.select_related("user").all()},
        apps=apps,
        tokens=tokens,
        connections=connections,
    )


@contextmanager
def rolled_back():
    """Undo every write made inside (requests of the test client included), so each role of
    a permission matrix meets the same world without building it again."""
    savepoint = transaction.savepoint()
    try:
        yield
    finally:
        transaction.savepoint_rollback(savepoint)
