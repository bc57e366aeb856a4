"""System checks of the authorization server's configuration."""

from django.core import checks
from oauth2_provider.settings import oauth2_settings


@checks.register(checks.Tags.security)
def hashed_tokens_with_grace(app_configs, **kwargs):
    """DOT's own check (oauth2_provider.E001, silenced in settings) refuses hashed tokens with a
    refresh grace period; only our validator's sealed grace answer makes the pair work."""
    from authserver.validator import ConnectorOAuth2Validator

    if (
        oauth2_settings.COMPLIANT_BCP_RFC9700_TOKEN_STORAGE
        and oauth2_settings.REFRESH_TOKEN_GRACE_PERIOD_SECONDS > 0
        and not issubclass(oauth2_settings.OAUTH2_VALIDATOR_CLASS, ConnectorOAuth2Validator)
    ):
        return [
            checks.Error(
                "Hashed token storage with a refresh grace period needs "
                "authserver.validator.ConnectorOAuth2Validator, which answers the grace path.",
                id="authserver.E001",
            )
        ]
    return []
