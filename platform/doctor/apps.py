from django.apps import AppConfig


class DoctorConfig(AppConfig):
    name = "doctor"
    verbose_name = "Connection doctor"
