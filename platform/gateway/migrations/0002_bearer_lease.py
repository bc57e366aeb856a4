"""PostgreSQL: a change to what bearer checks read commits only when no web process trusts the
answers it keeps (gateway.bearer, "the lease").

A web process that trusts its kept answers without reading the generation holds the advisory
lock ``LEASE_LOCK`` in shared mode on its own connection, and took it before it read the
generation it trusts. The generation's trigger now takes that lock in exclusive mode before it
moves the generation: a changing transaction commits only once every process has let go of the
lock (each does, and takes it anew, every ``LEASE_RENEW_SECONDS``; a process stops trusting
before it lets go), and a process that takes the lock after it reads the new generation.

A process that holds the lock and has run nothing on that session for a whole ``HOLDERS_WAIT``
(its event loop stuck, its host gone) has its session ended; the writer then waits
``LEASE_SECONDS`` more, the longest a process trusts a lease after it asked for it (any lease
of that session was asked for before it ended), and waits for the lock again. A holder that ran
something during the wait (it took the lock as the writer's wait ended) is spared, and lets go
at its next renewal. Should the writer's role not be allowed to end a session (a superuser's),
the writer waits until it lets go, however long that takes.
"""

from django.db import migrations

TABLE = "gateway_bearer_generation"
BUMP = "gateway_bearer_generation_bump"
LEASE_LOCK = 1835233383  # gateway.bearer.LEASE_LOCK: one advisory lock key (< 2**31)
HOLDERS_WAIT = "1s"  # longer than gateway.bearer.LEASE_SECONDS
LEASE_SECONDS = 0.5  # gateway.bearer.LEASE_SECONDS, or longer

# 0001's function, which 0002 replaces (and unapplying it puts back).
_BUMP_0001 = (
    "DECLARE me text := pg_current_xact_id()::text; BEGIN "
    "IF current_setting('gateway.bearer_generation', true) IS DISTINCT FROM me THEN "
    'UPDATE "{table}" SET generation = me::bigint; '
    "PERFORM set_config('gateway.bearer_generation', me, true); "
    "END IF; RETURN NULL; END"
)

# The holders of the lock in shared mode (a bigint key below 2**31: classid 0, objid the key)
# whose session has run nothing since ``attempt`` (a holder that renewed meanwhile, or took the
# lock only when the writer's wait ended, trusts a lease younger than the wait: spared).
_STALE_HOLDERS = (
    "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.classid = 0 "
    f"AND l.objid = {LEASE_LOCK} AND l.objsubid = 1 AND l.mode = 'ShareLock' AND l.granted "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.pid <> pg_backend_pid() AND a.state = 'idle' AND a.state_change < attempt"
)

_BUMP_0002 = (
    "DECLARE me text := pg_current_xact_id()::text; waited text; attempt timestamptz; "
    "holder int; ended boolean; BEGIN "
    "IF current_setting('gateway.bearer_generation', true) IS DISTINCT FROM me THEN "
    "waited := current_setting('lock_timeout'); "
    f"PERFORM set_config('lock_timeout', '{HOLDERS_WAIT}', true); "
    "LOOP "
    "attempt := clock_timestamp(); "
    "BEGIN "
    f"PERFORM pg_advisory_xact_lock({LEASE_LOCK}); "
    "EXIT; "
    "EXCEPTION WHEN lock_not_available THEN "
    "PERFORM pg_stat_clear_snapshot(); "  # else the transaction's first look at the sessions
    "ended := false; "
    f"FOR holder IN {_STALE_HOLDERS} LOOP "
    "BEGIN ended := pg_terminate_backend(holder) OR ended; "
    "EXCEPTION WHEN insufficient_privilege THEN NULL; "  # then wait for it to let go
    "END; "
    "END LOOP; "
    # Whatever lease a session ended now asked for, it asked before: run out after this.
    f"IF ended THEN PERFORM pg_sleep({LEASE_SECONDS}); END IF; "
    "END; "
    "END LOOP; "
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
