from django.apps import AppConfig


class AuthserverConfig(AppConfig):
    name = "authserver"
    verbose_name = "Authorization server"

    def ready(self) -> None:
        from django.db.models.signals import pre_save
        from oauth2_provider.models import get_application_model

        from authserver import (
            checks,  # noqa: F401  (registers the system checks)
            signals,  # noqa: F401  (connects the receivers)
        )
        from authserver.registration import public_client_holds_no_secret

        pre_save.connect(public_client_holds_no_secret, sender=get_application_model())
