"""Account pages around sign-in: password reset by email (Django's views, our wording)."""

from django.conf import settings
from django.contrib.auth import views as auth_views

CONSOLE_EMAIL = "django.core.mail.backends.console.EmailBackend"


def emails_print_to_console() -> bool:
    """The embedded default prints emails to the server's console instead of sending them."""
    return settings.EMAIL_BACKEND == CONSOLE_EMAIL


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "registration/password_reset.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = "/accounts/password-reset/sent/"

    def form_valid(self, form):
        self.extra_email_context = {"public_url": settings.PUBLIC_URL}
        return super().form_valid(form)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "registration/password_reset.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            console_email=emails_print_to_console(),
            timeout_hours=settings.PASSWORD_RESET_TIMEOUT // 3600,
            **kwargs,
        )
