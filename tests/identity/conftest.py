"""A real OpenID Connect provider on loopback, and tenant acme signing in through it."""

import pytest

from tests.support.idp_process import TestIdp

CLIENT_ID = "platform-acme"
CLIENT_SECRET = "platform-acme-secret"


@pytest.fixture(scope="session")
def idp_server():
    idp = TestIdp()
    yield idp
    idp.stop()


@pytest.fixture
def idp(idp_server, live_url):
    """The IdP, with the live platform registered as acme's client."""
    idp_server.client(CLIENT_ID, CLIENT_SECRET, [f"{live_url}/sso/t/acme/callback"])
    return idp_server


@pytest.fixture
def acme_sso(acme, idp):
    """acme signs in through the test IdP: acme.test addresses only; group acme-admins gives
    admin, acme-staff member, contractors no access; everyone else no access."""
    from identity.services import provider_save

    return provider_save(
        tenant=acme["tenant"],
        name="Acme IdP",
        issuer=idp.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        allowed_domains=["acme.test"],
        role_rules=[
            {"claim": "groups", "value": "acme-admins", "role": "admin"},
            {"claim": "groups", "value": "acme-staff", "role": "member"},
            {"claim": "groups", "value": "contractors", "role": "none"},
        ],
        default_role="none",
        local_passwords_allowed=False,
    )
