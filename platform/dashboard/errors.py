"""The platform's own error pages (403, 404, 405, 500, 503, CSRF failure): styled HTML for
people, DRF-shaped JSON (``{"detail": ...}``) under /api/, and OAuth's ``temporarily_unavailable``
at the OAuth endpoints while a backing service is down (config.faults, a 503 with Retry-After).
And stale forms that survive a lost session: a POST refused because the session ended or its
CSRF token went stale is kept (in the session, once) and offered back on /accounts/resubmit/
after sign-in, so the edit is not lost."""

import sys
from urllib.parse import quote

from django.conf import settings
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from authserver.middleware import CORS_PATHS as OAUTH_JSON_PATHS
from config.faults import RETRY_AFTER, unavailable

_STASH = "stale_form"
_STASH_LIMIT = 64 * 1024  # characters of form data kept; larger forms are not kept
_PAGES = {
    403: (
        "You cannot open this page",
        "Your account does not have access to it. An admin of the tenant can change your role.",
    ),
    404: ("Page not found", "Nothing lives at this address, or you cannot see it."),
    405: (
        "This address takes a form, not a visit",
        "It is the target of a button (a form "
        "submission); reloading or opening it directly does nothing.",
    ),
    500: (
        "Something went wrong on our side",
        "The error is in the server's log, with this request's id. Try again in a moment.",
    ),
    503: (
        "Temporarily unavailable",
        "A service the platform needs is not answering (it may be restarting). Nothing was "
        "changed: try again in a moment.",
    ),
}


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def error_response(request, status: int, detail: str | None = None):
    title, message = _PAGES[status]
    if _wants_json(request):
        return JsonResponse({"detail": detail or title}, status=status)
    back = request.META.get("HTTP_REFERER", "")
    if not back.startswith(settings.PUBLIC_URL + "/"):
        back = ""
    context = {"status": status, "title": title, "message": message, "back": back}
    if status == 503:
        context["user"] = None  # who is signed in is in the database: do not ask it again
    return render(request, "errors/error.html", context, status=status)


def bad_request(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return render(
        request,
        "errors/error.html",
        {"status": 400, "title": "Bad request", "message": "The request could not be read."},
        status=400,
    )


def permission_denied(request, exception=None):
    return error_response(request, 403)


def not_found(request, exception=None):
    return error_response(request, 404, "Not found.")


def server_error(request):
    """handler500, called while Django handles the exception: an outage of the database, the
    broker or the cache is a 503 (with Retry-After), a bug a 500."""
    if unavailable(sys.exc_info()[1]) is None:
        return error_response(request, 500, "Server error.")
    if request.path.startswith(OAUTH_JSON_PATHS):
        response = JsonResponse(
            {
                "error": "temporarily_unavailable",
                "error_description": "The server is temporarily unavailable: try again shortly",
            },
            status=503,
        )
        response["Cache-Control"] = "no-store"
    else:
        response = error_response(request, 503, "Temporarily unavailable: try again shortly.")
    response["Retry-After"] = str(RETRY_AFTER)
    return response


def _form_data(request) -> list[tuple[str, str]] | None:
    """The submitted fields (no CSRF token), or None when there is nothing to keep."""
    if request.method != "POST" or request.FILES or _wants_json(request):
        return None
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name != "csrfmiddlewaretoken"
        for value in values
    ]
    if not fields or sum(len(n) + len(v) for n, v in fields) > _STASH_LIMIT:
        return None
    return fields


def _resubmit_page(request, fields, path: str, status: int, reason: str):
    get_token(request)  # a fresh token for the form below
    return render(
        request,
        "errors/resubmit.html",
        {"fields": fields, "action": path, "reason": reason},
        status=status,
    )


def csrf_failure(request, reason: str = ""):
    """CSRF_FAILURE_VIEW: the form's token went stale (signed out and in elsewhere, or a very
    old page). Offer the same submission again with a fresh token, or after signing in."""
    if _wants_json(request):
        return JsonResponse(
            {"detail": "CSRF check failed: send the session's CSRF token, or use an API key."},
            status=403,
        )
    fields = _form_data(request)
    if fields is None or request.path == settings.LOGIN_URL:
        return render(
            request,
            "errors/error.html",
            {
                "status": 403,
                "title": "Your session expired",
                "message": "This page was open too long. Go back, reload it and try again.",
                "back": settings.LOGIN_URL if request.path == settings.LOGIN_URL else "",
            },
            status=403,
        )
    if not request.user.is_authenticated:
        return _stash_and_sign_in(request, fields)
    return _resubmit_page(request, fields, request.path, 403, "expired")


def _stash_and_sign_in(request, fields):
    request.session[_STASH] = {"path": request.path, "fields": fields}
    return redirect(f"{settings.LOGIN_URL}?next={quote('/accounts/resubmit/', safe='')}")


class StaleFormMiddleware:
    """A POST from someone whose session ended gets login_required's redirect to sign-in; keep
    the form so it can be sent again after signing in (instead of a GET on a POST-only URL)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.method == "POST"
            and response.status_code == 302
            and response.get("Location", "").startswith(settings.LOGIN_URL + "?")
            and not request.user.is_authenticated
        ):
            fields = _form_data(request)
            if fields is not None:
                return _stash_and_sign_in(request, fields)
        if response.status_code == 405 and not _wants_json(request) and not response.content:
            if request.path.startswith(("/dashboard/", "/accounts/")):
                return error_response(request, 405)
        return response


@require_GET
def resubmit(request):
    """After sign-in: the kept form, sent again with one click (or discarded)."""
    stash = request.session.pop(_STASH, None)
    if not stash or not request.user.is_authenticated:
        return redirect("dashboard")
    return _resubmit_page(request, stash["fields"], stash["path"], 200, "signed-in")
