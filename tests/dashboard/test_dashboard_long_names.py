"""Long, unbroken names (tenants, connectors, members, clients, invitations, API keys) in real
Chromium at a laptop's width: every table's action buttons stay on screen, the page does not
scroll sideways, and the full name is still there to read."""

import pytest

from tests.dashboard.test_dashboard_browser import chromium, open_page, screenshot, sign_in  # noqa: F401 - fixtures
from tests.support.flow import OAuthClient
from tests.support.oauth import Browser

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at"),
]

WIDTH = 1280
LONG = "Q" * 120  # no space, no hyphen: nothing for the browser to break at


@pytest.fixture
def long_names(live_url, acme):
    from django.contrib.auth.models import User
    from oauth2_provider.models import Application

    from tenants.api_keys import api_key_create
    from tenants.services import connector_update, member_add, member_invite, tenant_update

    tenant, connector = acme["tenant"], acme["connector"]
    tenant_update(tenant=tenant, name=f"Tenant{LONG}")
    connector_update(connector=connector, name=f"Connector{LONG}")
    member_add(
        tenant=tenant,
        username=f"member{LONG}",
        password="long-member-pass-123",
        email=f"{'m' * 60}@{'d' * 60}.example",
    )
    member_invite(tenant=tenant, email=f"{'i' * 60}@{'e' * 60}.example")
    client = OAuthClient.register(live_url)
    client.tokens(Browser("bob", "bob-pass-123"), connector.url)
    Application.objects.filter(client_id=client.client_id).update(name=f"Client{LONG}")
    api_key_create(user=User.objects.get(username="alice"), name=f"Key{'K' * 95}")
    User.objects.create_superuser("olga", "olga@example.com", "olga-pass-123")
    return {"tenant": tenant, "connector": connector}


def _assert_on_screen(page, what: str) -> int:
    """Every button and link in the page's table rows lies within the viewport's width, and
    the page itself is no wider than the viewport."""
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= WIDTH, f"{what}: the page is {page_width}px wide"
    checked = 0
    for control in page.locator("main table tbody tr :is(button, a)").all():
        if not control.is_visible():
            continue
        box = control.bounding_box()
        label = control.inner_text().strip()
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (
            f"{what}: {label!r} at x={box['x']:.0f}..{box['x'] + box['width']:.0f}"
        )
        checked += 1
    return checked


def test_long_names_keep_the_action_columns_on_screen(live_url, long_names, open_page):  # noqa: F811
    connector = long_names["connector"]

    admin = open_page(width=WIDTH)
    sign_in(admin, live_url, "alice", "alice-pass-123")
    pages = [
        ("overview", "/dashboard/", 1),
        ("tenant", "/dashboard/t/acme/", 1),
        ("members", "/dashboard/t/acme/members/", 6),  # role, remove; copy, resend, revoke
        ("connector", f"/dashboard/connectors/{connector.pk}/", 1),  # revoke the client
        ("api keys", "/dashboard/keys/", 1),
    ]
    for what, path, at_least in pages:
        admin.goto(f"{live_url}{path}")
        assert _assert_on_screen(admin, what) >= at_least, what
        screenshot(admin, f"long-names-{what.replace(' ', '-')}")
    # The names are whole on the page, to read or to copy.
    admin.goto(f"{live_url}/dashboard/t/acme/members/")
    assert admin.get_by_text(f"member{LONG}", exact=True).count() >= 1

    operator = open_page(width=WIDTH)
    sign_in(operator, live_url, "olga", "olga-pass-123")
    assert _assert_on_screen(operator, "operator overview") >= 1
    screenshot(operator, "long-names-operator-overview")
