"""Authorizations that wait on the upstream hop, and the resume URL that continues them.

After consent, ``/authorize`` keeps the authorization here (in this browser's session) and sends
the browser to the upstream app's hop view, which owns the member's connection to the provider.
When its part is done (connected, or already connected, or the user said no at the provider) the
upstream app hands the authorization back with :func:`awaiting_hand_back`: a redirect to the
resume endpoint, which continues only an authorization handed back this way, and only once.
"""

import secrets
import time

from django.http import HttpResponseRedirect
from django.urls import reverse

AWAITING_KEY = "authorizations_awaiting_upstream"
LIFETIME = 900
MAX_AWAITING = 10


def _awaiting(request) -> dict:
    """The session's unexpired entries, newest last."""
    now = time.time()
    return {
        key: entry
        for key, entry in request.session.get(AWAITING_KEY, {}).items()
        if entry["created"] > now - LIFETIME
    }


def awaiting_keep(request, pending: dict) -> str:
    """Keep a consented authorization for the hop; return its id (for the hop view's URL)."""
    authorization_id = secrets.token_urlsafe(16)
    kept = dict(list(_awaiting(request).items())[-(MAX_AWAITING - 1) :])
    kept[authorization_id] = {"pending": pending, "created": time.time(), "outcome": None}
    request.session[AWAITING_KEY] = kept
    return authorization_id


def awaiting_get(request, authorization_id: str) -> dict | None:
    """The pending authorization ``authorization_id`` names, while it waits on the hop."""
    entry = _awaiting(request).get(authorization_id)
    return entry["pending"] if entry is not None and entry["outcome"] is None else None


def awaiting_hand_back(
    request, authorization_id: str, *, denied: str = "", unavailable: str = ""
) -> HttpResponseRedirect:
    """The upstream hop is done: ``denied`` says why the user refused it at the provider,
    ``unavailable`` why the upstream cannot be used now (no shared account, the provider
    unreachable), else the member's connection is usable. Answer with the redirect to the
    resume URL."""
    kept = _awaiting(request)
    if authorization_id in kept and kept[authorization_id]["outcome"] is None:
        if denied:
            outcome = {"denied": denied}
        elif unavailable:
            outcome = {"unavailable": unavailable}
        else:
            outcome = {"connected": True}
        kept[authorization_id]["outcome"] = outcome
        request.session[AWAITING_KEY] = kept
    return HttpResponseRedirect(
        reverse("oauth2_provider:authorize-resume", args=[authorization_id])
    )


def awaiting_take(request, authorization_id: str) -> tuple[dict, dict] | None:
    """The handed-back authorization and the hop's outcome, removed (single use); None when
    there is none, it expired, or the hop has not handed it back."""
    kept = _awaiting(request)
    entry = kept.get(authorization_id)
    if entry is None or entry["outcome"] is None:
        return None
    del kept[authorization_id]
    request.session[AWAITING_KEY] = kept
    return entry["pending"], entry["outcome"]
