"""API keys moved from the api app to tenants (tenants 0002, api 0002): the table is kept, so a
key issued before the move still signs in, lists and revokes, and admin permissions on keys stay
with their holders."""

import hashlib
import hmac

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tenants.api_keys import api_key_check
from tenants.models import ApiKey

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at"),  # no collectstatic output here
]

BEFORE = [("api", "0001_initial"), ("tenants", "0001_initial")]
KEY = "mcpk_AbCdEfGh" + "x" * 40  # as the api app made them: prefix of 13, then the rest


def test_a_key_issued_before_the_move_keeps_working(client, acme):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    bob = User.objects.get(username="bob")
    digest = hmac.new(settings.SECRET_KEY.encode(), KEY.encode(), hashlib.sha256).hexdigest()
    old.get_model("api", "ApiKey").objects.create(
        user_id=bob.pk, name="nightly report", prefix=KEY[:13], digest=digest
    )
    # An operator allowed to see keys in the admin, through the api app's content type.
    ContentType.objects.clear_cache()
    api_type, _ = ContentType.objects.get_or_create(app_label="api", model="apikey")
    view, _ = Permission.objects.get_or_create(
        content_type=api_type, codename="view_apikey", defaults={"name": "Can view api key"}
    )
    auditor = User.objects.create_user("auditor", password="auditor-pass-123", is_staff=True)
    auditor.user_permissions.add(view)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()

    row = ApiKey.objects.get()
    assert row._meta.db_table == "api_apikey" and row.name == "nightly report"
    assert api_key_check(KEY) == row
    auth = {"Authorization": f"Bearer {KEY}"}
    me = client.get("/api/v1/me/", headers=auth)
    assert me.status_code == 200 and me.json()["username"] == "bob"
    listed = client.get("/api/v1/keys/", headers=auth).json()
    assert [key["prefix"] for key in listed["results"]] == [KEY[:13]]

    assert User.objects.get(username="auditor").has_perm("tenants.view_apikey")
    assert not ContentType.objects.filter(app_label="api", model="apikey").exists()

    assert client.delete(f"/api/v1/keys/{row.pk}/", headers=auth).status_code == 204
    assert client.get("/api/v1/me/", headers=auth).status_code == 401
