from django.apps import AppConfig


class UpstreamConfig(AppConfig):
    name = "upstream"
    verbose_name = "Upstream connections"

    def ready(self) -> None:
        from upstream import checks, signals  # noqa: F401  (registers checks and receivers)
