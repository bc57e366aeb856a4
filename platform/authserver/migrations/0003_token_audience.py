"""Tokens know their connector: an audience row per grant, access and refresh token.

Rows issued before this migration get theirs from their ``resource`` (one connector URL); the
origin is ignored, so tokens issued under an earlier PUBLIC_URL keep their connector.
"""

import json
import re

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

CONNECTOR_URL = re.compile(
    r"^https?://[^/]+/t/(?P<tenant>[a-z0-9-]+)/(?P<connector>[a-z0-9-]+)/mcp$"
)
BATCH = 1000


def backfill(apps, schema_editor):
    """One audience row for every existing grant and token whose resource names a connector."""
    Connector = apps.get_model("tenants", "Connector")
    TokenAudience = apps.get_model("authserver", "TokenAudience")
    connectors = {
        (tenant, slug): pk
        for pk, tenant, slug in Connector.objects.values_list("pk", "tenant__slug", "slug")
    }
    for field, model in (
        ("grant", apps.get_model("oauth2_provider", "Grant")),
        ("access_token", apps.get_model("oauth2_provider", "AccessToken")),
        ("refresh_token", apps.get_model("oauth2_provider", "RefreshToken")),
    ):
        rows = []
        for pk, resource in model.objects.values_list("pk", "resource").iterator():
            if isinstance(resource, str):  # an undecoded JSON list on some backends
                resource = json.loads(resource or "[]")
            if not isinstance(resource, list) or len(resource) != 1:
                continue
            match = CONNECTOR_URL.match(str(resource[0]))
            connector_id = match and connectors.get((match["tenant"], match["connector"]))
            if connector_id:
                rows.append(TokenAudience(connector_id=connector_id, **{f"{field}_id": pk}))
            if len(rows) >= BATCH:
                TokenAudience.objects.bulk_create(rows)
                rows = []
        TokenAudience.objects.bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [
        ("authserver", "0002_refresh_grace_answer"),
        ("oauth2_provider", "0018_resource_indicators"),
        ("tenants", "0001_initial"),
        migrations.swappable_dependency(settings.OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL),
        migrations.swappable_dependency(settings.OAUTH2_PROVIDER_GRANT_MODEL),
        migrations.swappable_dependency(settings.OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TokenAudience",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "access_token",
                    models.OneToOneField(
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="audience",
                        to=settings.OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL,
                    ),
                ),
                (
                    "connector",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.connector",
                    ),
                ),
                (
                    "grant",
                    models.OneToOneField(
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="audience",
                        to=settings.OAUTH2_PROVIDER_GRANT_MODEL,
                    ),
                ),
                (
                    "refresh_token",
                    models.OneToOneField(
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="audience",
                        to=settings.OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("access_token", None),
                                ("grant__isnull", False),
                                ("refresh_token", None),
                            ),
                            models.Q(
                                ("access_token__isnull", False),
                                ("grant", None),
                                ("refresh_token", None),
                            ),
                            models.Q(
                                ("access_token", None),
                                ("grant", None),
                                ("refresh_token__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="token_audience_names_one_token",
                    )
                ],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
