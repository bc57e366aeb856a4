"""Account pages under /accounts/ that the dashboard owns (config.urls includes them)."""

from django.urls import path

from dashboard import accounts, errors

urlpatterns = [
    path("resubmit/", errors.resubmit, name="resubmit"),
    path("password-reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        accounts.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
]
