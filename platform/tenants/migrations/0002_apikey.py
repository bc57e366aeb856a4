"""API keys become the tenants app's (from ``api``): the model moves, the table stays.

State only: ``api_apikey`` keeps its name, columns and rows, so every issued key keeps working.
The content type (and the admin permissions hanging off it) moves with the model.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def content_type_to(app_label: str, other: str):
    def move(apps, schema_editor):
        content_types = apps.get_model("contenttypes", "ContentType").objects
        if not content_types.filter(app_label=app_label, model="apikey").exists():
            content_types.filter(app_label=other, model="apikey").update(app_label=app_label)

    return move


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
        ("api", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiKey",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=100)),
                        ("prefix", models.CharField(max_length=16, unique=True)),
                        ("digest", models.CharField(max_length=64)),
                        ("created", models.DateTimeField(auto_now_add=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="api_keys",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "api_apikey", "ordering": ["-created"]},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to("tenants", "api"), content_type_to("api", "tenants")),
    ]
