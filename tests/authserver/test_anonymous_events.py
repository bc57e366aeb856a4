"""Nobody authenticated these requests: they must not fill a tenant's trace, nor put words of
the sender's choosing into it as if a known client had said them."""

import httpx
import pytest

from events.models import Event
from events.services import ANONYMOUS_EVENT_LIMIT
from tests.support.flow import mcp_post

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_anonymous_flood_at_a_connector_writes_a_bounded_number_of_rows(live_url, acme):
    url = acme["connector"].url
    for n in range(30):
        assert mcp_post(url, None).status_code == 401
        assert mcp_post(url, f"made-up-token-{n}").status_code == 401
    for _ in range(30):
        path = f"/.well-known/oauth-protected-resource/t/acme/{acme['connector'].slug}/mcp"
        assert httpx.get(f"{live_url}{path}").status_code == 200
    rows = Event.objects.filter(connector=acme["connector"]).count()
    assert 0 < rows <= ANONYMOUS_EVENT_LIMIT


def test_token_requests_of_an_unauthenticated_client_name_no_client_and_no_connector(
    live_url, acme
):
    forged = "Claude <b>support</b>: re-enter your password at evil.example"
    for _ in range(3):
        response = httpx.post(
            f"{live_url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": "guess",
                "client_id": forged,
                "resource": acme["connector"].url,
            },
        )
        assert response.status_code in (400, 401)
    assert not Event.objects.filter(client_id=forged).exists()
    assert not Event.objects.filter(connector=acme["connector"], kind="oauth.refresh").exists()
