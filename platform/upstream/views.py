"""The upstream OAuth client: the hop to the provider and its ``/upstream/<provider>/callback``.

``/authorize`` sends a consented authorization for a connector that holds upstream connections
to :func:`upstream_hop` (``/upstream/hop/<authorization>``). When the member (or, in shared mode,
the tenant) has a usable connection, it hands the authorization straight back to the
authorization server's resume URL; otherwise it sends the browser to the provider, and the
callback stores the connection and then hands back. The dashboard starts the same hop without an
authorization (:func:`upstream_hop_start` with ``authorization=None``).

The provider's ``state`` is single-use, created only after consent, and bound to this browser
session (it lives in the session, which only this browser's cookie opens) and to the pending
authorization it resumes. The provider object comes from the connector's kind
(``connectors/base.py``): nothing here knows a provider.
"""

import secrets
import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from authserver.resume import awaiting_get, awaiting_hand_back
from connectors.base import UpstreamReauthRequired, UpstreamUnavailable, get_kind
from events.models import Event
from events.services import event_record_for_request
from tenants.models import Connector
from tenants.selectors import connector_holds_upstream
from upstream.models import UpstreamConnection
from upstream.services import (
    connector_connect_url,
    upstream_connection_for,
    upstream_connection_store,
)

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


def upstream_hop_start(request, *, connector: Connector, authorization: dict | None):
    """Redirect to the provider. ``authorization`` is the pending authorization to hand back
    (``{"id": ..., "client_id": ...}``), or None when connecting from the dashboard (the
    tenant's shared account, or the member's own)."""
    provider = get_kind(connector.kind).upstream.build_provider()
    state = secrets.token_urlsafe(32)
    states = {
        key: value
        for key, value in request.session.get(STATES_KEY, {}).items()
        if value["created"] > time.time() - STATE_LIFETIME
    }
    states[state] = {
        "connector_id": connector.pk,
        "authorization": authorization,
        "for_user": connector.mode == Connector.Mode.PER_USER,
        "created": time.time(),
    }
    request.session[STATES_KEY] = states
    event_record_for_request(
        request,
        kind="upstream.hop",
        connector=connector,
        user_id=request.user.pk,
        client_id=_client_id(authorization),
        detail={
            "provider": provider.name,
            "mode": connector.mode,
            "from_client": bool(authorization),
        },
    )
    return redirect(
        provider.authorization_url(state=state, redirect_uri=callback_url(provider.name))
    )


def _client_id(authorization: dict | None) -> str:
    return (authorization or {}).get("client_id", "")


@login_required
def upstream_hop(request, authorization_id: str):
    """``/upstream/hop/<authorization>``: the upstream part of a consented authorization.
    Hands it straight back when the connection it needs is usable; else the hop to the
    provider (per-user mode) or a page saying the tenant's shared account is missing."""
    pending = awaiting_get(request, authorization_id)
    connector = (
        Connector.objects.select_related("tenant").filter(pk=pending["connector_id"]).first()
        if pending is not None
        else None
    )
    if connector is None:
        return _page(
            request,
            "This authorization has expired",
            "It was already answered or is too old. Start the connection again from your client.",
            400,
        )
    if not connector_holds_upstream(connector):
        return awaiting_hand_back(request, authorization_id)
    connection = upstream_connection_for(connector=connector, user_id=request.user.pk)
    if connection is not None and connection.status not in UNUSABLE:
        return awaiting_hand_back(request, authorization_id)
    kind = get_kind(connector.kind)
    if connector.mode == Connector.Mode.SHARED:
        what = "has not been connected yet" if connection is None else "needs to be reconnected"
        return _page(
            request,
            f"{kind.title} is not connected",
            f"{connector.tenant.name}'s {kind.title} account {what}. A tenant admin connects it "
            f"once from the dashboard ({connector_connect_url(connector.pk)}); then connect your "
            "client again.",
            409,
        )
    authorization = {"id": authorization_id, "client_id": pending["client_id"]}
    return upstream_hop_start(request, connector=connector, authorization=authorization)


def _take_state(request, state: str, provider: str):
    """The hop entry of ``state``, removed from the session (single use), or None."""
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
        return None
    return entry


def _invalid_state(request):
    return _page(
        request,
        "This sign-in link is not valid",
        "It was already used, has expired, or was started in another browser. Start the "
        "connection again from your client.",
        400,
    )


@login_required
def upstream_callback(request, provider: str):
    """``/upstream/<provider>/callback``: validate state, exchange the code, hand back."""
    entry = _take_state(request, request.GET.get("state", ""), provider)
    if entry is None:
        return _invalid_state(request)
    connector = Connector.objects.select_related("tenant").get(pk=entry["connector_id"])
    authorization = entry["authorization"]
    kind = get_kind(connector.kind)
    if request.GET.get("error"):
        event_record_for_request(
            request,
            kind="upstream.callback",
            outcome=Event.Outcome.DENIED,
            connector=connector,
            user_id=request.user.pk,
            status_code=302 if authorization else 200,
            client_id=_client_id(authorization),
            detail={"provider": provider, "error": request.GET["error"]},
        )
        if authorization:
            return awaiting_hand_back(
                request,
                authorization["id"],
                denied=f"The {kind.title} authorization was not granted",
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
    return _connected(request, entry, connector, provider, tokens)


def _connected(request, entry: dict, connector: Connector, provider: str, tokens):
    """Store the new connection, then hand the authorization back (or say it is done)."""
    kind = get_kind(connector.kind)
    authorization = entry["authorization"]
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
        client_id=_client_id(authorization),
        status_code=302,
        detail={"provider": provider, "account": tokens.external_account_id},
    )
    if authorization is None:
        whose = "Your" if entry["for_user"] else f"{connector.tenant.name}'s"
        return _page(
            request,
            f"{kind.title} connected",
            f"{whose} {kind.title} company "
            f"{tokens.external_account_name or tokens.external_account_id} is connected to "
            f"{connector.display_name}. Clients connected to {connector.url} can use it now.",
            200,
        )
    return awaiting_hand_back(request, authorization["id"])
