"""Fixtures of the dashboard tests: the two-tenant world on the QuickBooks emulator."""

import pytest

from tests.dashboard.world import build_world
from tests.quickbooks.conftest import qbo_emulator, qbo_emulator_server  # noqa: F401


@pytest.fixture
def quickbooks_on_emulator(qbo_emulator, settings):  # noqa: F811
    settings.QUICKBOOKS_ENVIRONMENT = qbo_emulator.base_url
    settings.QUICKBOOKS_CLIENT_ID = qbo_emulator.client_id
    settings.QUICKBOOKS_CLIENT_SECRET = qbo_emulator.client_secret
    return qbo_emulator


@pytest.fixture
def world(db, quickbooks_on_emulator, settings):
    # The test client builds the middleware per client; scanning every app's static files
    # each time would cost more than the request itself.
    settings.WHITENOISE_USE_FINDERS = False
    return build_world(quickbooks_on_emulator)
