"""PostgreSQL: the bearer checks' generation (gateway.bearer).

One row, changed by every transaction that changes what a bearer check answers: an update of a
column the check reads, a delete (of an audience row: a token's), a truncate, on each of the
check's seven tables (triggers; at commit, but for a truncate). The gateway keeps the checks it answered with the generation they were
read at, and asks only for the generation while it has not moved (one table, one row, no join).
The row holds the changing transaction's id (``pg_current_xact_id``): values never repeat, and a
transaction that changes many rows writes it once.

No insert changes an answer the gateway keeps: it keeps only answers where every join found its
row (token, audience, client, user, membership), each by a unique key, so a new row joins none
of them. SQLite needs none of this: its checks read the tables in the web process itself.
"""

from django.conf import settings
from django.db import migrations

TABLE = "gateway_bearer_generation"
BUMP = "gateway_bearer_generation_bump"

# (app label, model name): the columns whose update changes a check's answer (every column the
# check selects, joins or filters on); tests/gateway/test_bearer_cache.py holds this to the SQL.
WATCHED = (
    ("tenants", "Tenant", ("id", "slug", "enabled")),
    (
        "tenants",
        "Connector",
        (
            "id",
            "tenant",
            "slug",
            "kind",
            "enabled",
            "mode",
            "settings",
            "tool_policy",
            "audit_arguments",
        ),
    ),
    ("tenants", "Membership", ("tenant", "user", "role")),
    ("authserver", "TokenAudience", ("access_token", "connector")),
)


def _watched(apps):
    every = (
        *WATCHED,
        (
            *settings.OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL.split("."),
            ("id", "token_checksum", "expires", "scope", "user", "application"),
        ),
        (*settings.OAUTH2_PROVIDER_APPLICATION_MODEL.split("."), ("id", "client_id")),
        (*settings.AUTH_USER_MODEL.split("."), ("id", "is_active", "username")),
    )
    for app_label, model_name, fields in every:
        model = apps.get_model(app_label, model_name)
        yield model, [model._meta.get_field(name).column for name in fields]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    q = schema_editor.quote_name
    run = schema_editor.execute
    run(
        f"CREATE TABLE {q(TABLE)} (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
        "generation bigint NOT NULL)"
    )
    run(f"INSERT INTO {q(TABLE)} (generation) VALUES (0)")
    # Once per transaction (a setting local to it remembers; a rolled-back savepoint forgets
    # both): a delete of many rows writes the row once.
    run(
        f"CREATE FUNCTION {q(BUMP)}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "DECLARE me text := pg_current_xact_id()::text; BEGIN "
        "IF current_setting('gateway.bearer_generation', true) IS DISTINCT FROM me THEN "
        f"UPDATE {q(TABLE)} SET generation = me::bigint; "
        "PERFORM set_config('gateway.bearer_generation', me, true); "
        "END IF; RETURN NULL; END $$"
    )
    audience = apps.get_model("authserver", "TokenAudience")
    for model, columns in _watched(apps):
        table = q(model._meta.db_table)
        changed = " OR ".join(f"OLD.{q(c)} IS DISTINCT FROM NEW.{q(c)}" for c in columns)
        deleted = "true"
        if model is audience:  # most audience rows are codes' and refresh tokens'
            deleted = f"OLD.{q(model._meta.get_field('access_token').column)} IS NOT NULL"
        # At commit (deferred): the row is locked only while the transaction commits, after
        # its other writes, so two writers cannot each hold what the other waits for.
        for event, when in (("update", changed), ("delete", deleted)):
            run(
                f"CREATE CONSTRAINT TRIGGER {q(BUMP + '_' + event)} AFTER {event.upper()} "
                f"ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({when}) "
                f"EXECUTE FUNCTION {q(BUMP)}()"
            )
        run(
            f"CREATE TRIGGER {q(BUMP + '_truncate')} AFTER TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {q(BUMP)}()"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    q = schema_editor.quote_name
    for model, _ in _watched(apps):
        for event in ("update", "delete", "truncate"):
            schema_editor.execute(
                f"DROP TRIGGER IF EXISTS {q(BUMP + '_' + event)} ON {q(model._meta.db_table)}"
            )
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {q(BUMP)}()")
    schema_editor.execute(f"DROP TABLE IF EXISTS {q(TABLE)}")


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_connector_tool_policy_audit_arguments"),
        ("authserver", "0004_consent_bound_to_redirect_and_client"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        migrations.swappable_dependency(settings.OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL),
        migrations.swappable_dependency(settings.OAUTH2_PROVIDER_APPLICATION_MODEL),
    ]

    operations = [migrations.RunPython(create, drop)]
