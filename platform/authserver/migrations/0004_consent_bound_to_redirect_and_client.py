"""Consents now name the redirect URI and the client's metadata; older ones named neither, so
they are dropped (each user is asked once more). Registration access tokens that never expired
(RFC 7592) and the never-used secrets of public clients are deleted too."""

from django.conf import settings
from django.db import migrations, models


def forget_unbound_consents(apps, schema_editor):
    apps.get_model("authserver", "Consent").objects.all().delete()


def drop_registration_credentials(apps, schema_editor):
    AccessToken = apps.get_model("oauth2_provider", "AccessToken")
    AccessToken.objects.filter(scope="oauth2_provider:registration").delete()
    Application = apps.get_model(*settings.OAUTH2_PROVIDER_APPLICATION_MODEL.split("."))
    Application.objects.filter(client_type="public").update(
        client_secret="", hash_client_secret=False
    )


class Migration(migrations.Migration):
    dependencies = [
        ("authserver", "0003_token_audience"),
        ("oauth2_provider", "0022_refreshtoken_token_family_index"),
    ]

    operations = [
        migrations.RunPython(forget_unbound_consents, migrations.RunPython.noop),
        migrations.RunPython(drop_registration_credentials, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="consent", name="one_consent_per_client_connector"),
        migrations.AddField(
            model_name="consent",
            name="redirect_uri",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="consent",
            name="client_digest",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddConstraint(
            model_name="consent",
            constraint=models.UniqueConstraint(
                fields=("user", "application", "connector", "redirect_uri"),
                name="one_consent_per_client_connector_redirect",
            ),
        ),
    ]
