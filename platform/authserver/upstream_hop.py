"""The upstream hop inside /authorize: after consent, send the user to the provider and back.

The provider's ``state`` is single-use, created only after consent, and bound to this browser
session (it lives in the session, which only this browser's cookie opens) and to the pending
authorization it resumes.
"""

import secrets
import time

from django.conf import settings
from django.shortcuts import redirect, render

from connectors.base import UpstreamReauthRequired, UpstreamUnavailable, get_kind
from events.models import Event
from events.services import event_record_for_request
from tenants.models import Connector
from upstream.models import UpstreamConnection
from upstream.services import upstream_connection_for, upstream_connection_store

STATES_KEY = "upstream_states"
STATE_LIFETIME = 900
UNUSABLE = (UpstreamConnection.Status.NEEDS_REAUTH, UpstreamConnection.Status.REVOKED)


def callback_url(provider: str) -> str:
    """The one redirect URI to register with the provider."""
    return f"{settings.PUBLIC_URL}/upstream/{provider}/callback"


def _page(request, title, message, status):
    return render(
        request, "authserver/message.html", {"title": title, "message": message}, status=status
    )


def upstream_hop_start(request, *, connector: Connector, pending: dict | None):
    """Redirect to the provider; ``pending`` is the authorization to resume, or None when
    connecting from the dashboard (the tenant's shared account, or the member's own)."""
    provider = get_kind(connector.kind).upstream.build_provider()
    state = secrets.token_urlsafe(32)
    states = {
        key: value
        for key, value in request.session.get(STATES_KEY, {}).items()
        if value["created"] > time.time() - STATE_LIFETIME
    }
    states[state] = {
        "connector_id": connector.pk,
        "pending": pending,
        "for_user": connector.mode == Connector.Mode.PER_USER,
        "created": time.time(),
    }
    request.session[STATES_KEY] = states
    event_record_for_request(
        request,
        kind="upstream.hop",
        connector=connector,
        user_id=request.user.pk,
        client_id=(pending or {}).get("client_id", ""),
        detail={"provider": provider.name, "mode": connector.mode, "from_client": bool(pending)},
    )
    return redirect(
        provider.authorization_url(state=state, redirect_uri=callback_url(provider.name))
    )


def upstream_hop(request, connector: Connector, pending: dict):
    """None when the member may get a code now; else what comes first: the hop to the
    provider (per-user mode) or a page saying the tenant's shared account is missing."""
    kind = get_kind(connector.kind)
    if kind.upstream is None:
        return None
    connection = upstream_connection_for(connector=connector, user_id=request.user.pk)
    usable = connection is not None and connection.status not in UNUSABLE
    if usable:
        return None
    if connector.mode == Connector.Mode.SHARED:
        what = "has not been connected yet" if connection is None else "needs to be reconnected"
        return _page(
            request,
            f"{kind.title} is not connected",
            f"{connector.tenant.name}'s {kind.title} account {what}. A tenant admin connects it "
            f"once from the dashboard ({settings.PUBLIC_URL}/dashboard/connectors/{connector.pk}/"
            "connect); then connect your client again.",
            409,
        )
    return upstream_hop_start(request, connector=connector, pending=pending)


def upstream_callback(request, provider: str):
    """``/upstream/<provider>/callback``: validate state, exchange the code, resume."""
    from authserver.views import AuthorizeView, client_redirect_error

    state = request.GET.get("state", "")
    entry = request.session.get(STATES_KEY, {}).pop(state, None) if state else None
    request.session.modified = True
    if entry is None or entry["created"] < time.time() - STATE_LIFETIME:
        event_record_for_request(
            request,
            kind="upstream.callback",
            outcome=Event.Outcome.DENIED,
            status_code=400,
            detail={"provider": provider, "error": "unknown_state"},
        )
        return _page(
            request,
            "This sign-in link is not valid",
            "It was already used, has expired, or was started in another browser. Start the "
            "connection again from your client.",
            400,
        )
    connector = Connector.objects.select_related("tenant").get(pk=entry["connector_id"])
    pending = entry["pending"]
    kind = get_kind(connector.kind)
    if request.GET.get("error"):
        event_record_for_request(
            request,
            kind="upstream.callback",
            outcome=Event.Outcome.DENIED,
            connector=connector,
            user_id=request.user.pk,
            status_code=302 if pending else 200,
            client_id=(pending or {}).get("client_id", ""),
            detail={"provider": provider, "error": request.GET["error"]},
        )
        if pending:
            return client_redirect_error(
                pending, "access_denied", f"The {kind.title} authorization was not granted"
            )
        return _page(
            request,
            f"{kind.title} not connected",
            f"{kind.title} answered: {request.GET['error']}.",
            200,
        )
    try:
        tokens = kind.upstream.build_provider().exchange_code(
            params=request.GET, redirect_uri=callback_url(provider)
        )
    except (UpstreamReauthRequired, UpstreamUnavailable) as exc:
        event_record_for_request(
            request,
            kind="upstream.callback",
            outcome=Event.Outcome.ERROR,
            connector=connector,
            user_id=request.user.pk,
            status_code=502,
            detail={"provider": provider, "error": str(exc)[:300]},
        )
        return _page(
            request,
            f"Could not finish connecting {kind.title}",
            f"{kind.title} did not accept the sign-in ({exc}). Start the connection again.",
            502,
        )
    upstream_connection_store(
        connector=connector,
        user=request.user if entry["for_user"] else None,
        provider=provider,
        tokens=tokens,
        connected_by=request.user,
    )
    event_record_for_request(
        request,
        kind="upstream.callback",
        connector=connector,
        user_id=request.user.pk,
        client_id=(pending or {}).get("client_id", ""),
        status_code=302,
        detail={"provider": provider, "account": tokens.external_account_id},
    )
    if pending is None:
        whose = "Your" if entry["for_user"] else f"{connector.tenant.name}'s"
        return _page(
            request,
            f"{kind.title} connected",
            f"{whose} {kind.title} company "
            f"{tokens.external_account_name or tokens.external_account_id} is connected to "
            f"{connector.display_name}. Clients connected to {connector.url} can use it now.",
            200,
        )
    view = AuthorizeView()
    view.setup(request)
    return view.complete(request, pending, connector, after_hop=True)
