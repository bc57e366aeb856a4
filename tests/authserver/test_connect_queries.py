"""What one connect costs the database, step by step: a regression (a row read twice, a query
per template variable) fails here before it shows in bench/connect_cost.py."""

import contextlib

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from events.models import Event
from tests.support.connect import STEPS, connect_flow
from tests.support.flow import stored_access_token

pytestmark = pytest.mark.django_db

# Statements that read or write rows, per step of the flow for the echo connector (no upstream
# hop); BEGIN, COMMIT and savepoints are left out, since backends log them differently.
EXPECTED = {
    # the client, its registration access token, the trace row
    "register": 3,
    # session, user, client, connector, membership, trace row, remembered consent, session write
    "authorize": 8,
    # session, user, client, connector, membership, consent upsert, trace row, grant and its
    # audience row, trace row, session write
    "consent": 11,
    # client, grant (with user, audience and connector), grant for DOT's resource check, access
    # and refresh token with an audience row each, the grant deleted (read, audience, row), the
    # used code, the trace row
    "token": 12,
}
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def _rows_statements(captured) -> list[str]:
    return [
        query["sql"]
        for query in captured
        if not query["sql"].lstrip().upper().startswith(TRANSACTION_CONTROL)
    ]


def test_each_step_of_a_connect_runs_a_fixed_number_of_statements(acme):
    host = settings.PUBLIC_URL.split("://", 1)[1]
    browser = Client(HTTP_HOST=host)
    browser.force_login(User.objects.get(username="bob"))
    client = Client(HTTP_HOST=host)
    resource = acme["connector"].url
    connect_flow(browser, client, resource)  # first use: nothing per process is counted

    counted = {}

    @contextlib.contextmanager
    def step(name):
        with CaptureQueriesContext(connection) as captured:
            yield
        counted[name] = _rows_statements(captured.captured_queries)

    tokens = connect_flow(browser, client, resource, step)

    assert list(counted) == list(STEPS)
    assert {name: len(statements) for name, statements in counted.items()} == EXPECTED, "\n".join(
        f"{name}: {sql[:160]}" for name, statements in counted.items() for sql in statements
    )
    assert stored_access_token(tokens["access_token"]).resource == [resource]
    # The token's trace row names the connector the grant was for (read with the grant).
    traced = Event.objects.filter(kind="oauth.token").latest("id")
    assert (traced.connector_id, traced.tenant_id) == (acme["connector"].pk, acme["tenant"].pk)
