"""PostgreSQL: a change to what bearer checks read commits only when no web process trusts the
answers it keeps (gateway.bearer, "the lease").

A web process that trusts its kept answers without reading the generation holds the advisory
lock ``LEASE_LOCK`` in shared mode on its own connection, and took it before it read the
generation it trusts. The generation's trigger now takes that lock in exclusive mode before it
moves the generation: a changing transaction commits only once every process has let go of the
lock (each does, and takes it anew, every ``LEASE_RENEW_SECONDS``; a process stops trusting
before it lets go), and a process that takes the lock after it reads the new generation.

A process that holds the lock and does not let go within ``HOLDERS_WAIT`` (its event loop stuck,
its host gone) has its session ended, and the transaction goes on. No process trusts its lease
longer than ``LEASE_SECONDS`` after it asked for the lock, shorter than ``HOLDERS_WAIT``: the
session it held it on is gone only after its trust ran out. Should the writer's role not be
allowed to end that session, it waits for the lock as long as it takes.
"""

from django.db import migrations

TABLE = "gateway_bearer_generation"
BUMP = "gateway_bearer_generation_bump"
LEASE_LOCK = 1835233383  # gateway.bearer.LEASE_LOCK: one advisory lock key (< 2**31)
HOLDERS_WAIT = "1s"  # longer than gateway.bearer.LEASE_SECONDS

# 0001's function, which 0002 replaces (and unapplying it puts back).
_BUMP_0001 = (
    "DECLARE me text := pg_current_xact_id()::text; BEGIN "
    "IF current_setting('gateway.bearer_generation', true) IS DISTINCT FROM me THEN "
    'UPDATE "{table}" SET generation = me::bigint; '
    "PERFORM set_config('gateway.bearer_generation', me, true); "
    "END IF; RETURN NULL; END"
)

# The holders of the lock in shared mode (a bigint key below 2**31: classid 0, objid the key).
_HOLDERS = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
    f"AND objid = {LEASE_LOCK} AND objsubid = 1 AND mode = 'ShareLock' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND pid <> pg_backend_pid()"
)

_BUMP_0002 = (
    "DECLARE me text := pg_current_xact_id()::text; waited text; BEGIN "
    "IF current_setting('gateway.bearer_generation', true) IS DISTINCT FROM me THEN "
    "waited := current_setting('lock_timeout'); "
    f"PERFORM set_config('lock_timeout', '{HOLDERS_WAIT}', true); "
    "BEGIN "
    f"PERFORM pg_advisory_xact_lock({LEASE_LOCK}); "
    "EXCEPTION WHEN lock_not_available THEN "
    "PERFORM set_config('lock_timeout', '0', true); "
    "BEGIN "
    f"PERFORM pg_terminate_backend(pid) FROM ({_HOLDERS}) AS holders; "
    "EXCEPTION WHEN insufficient_privilege THEN NULL; "
    "END; "
    f"PERFORM pg_advisory_xact_lock({LEASE_LOCK}); "
    "END; "
    "PERFORM set_config('lock_timeout', waited, true); "
    'UPDATE "{table}" SET generation = me::bigint; '
    "PERFORM set_config('gateway.bearer_generation', me, true); "
    "END IF; RETURN NULL; END"
)


def _replace(body: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute(
            f'CREATE OR REPLACE FUNCTION "{BUMP}"() RETURNS trigger LANGUAGE plpgsql AS $$ '
            f"{body.replace('{table}', TABLE)} $$"
        )

    return run


class Migration(migrations.Migration):
    dependencies = [("gateway", "0001_bearer_generation")]

    operations = [migrations.RunPython(_replace(_BUMP_0002), _replace(_BUMP_0001))]
