"""The upstream OAuth client: the hop to the provider and its ``/upstream/<provider>/callback``.

``/authorize`` sends a consented authorization for a connector that holds upstream connections
to :func:`upstream_hop` (``/upstream/hop/<authorization>``). When the member (or, in shared mode,
the tenant) has a usable connection, it hands the authorization straight back to the
authorization server's resume URL; otherwise it sends the browser to the provider, and the
callback stores the connection and then hands back. When the upstream cannot be used (the
tenant's shared account is missing, the provider unreachable or refusing the code), it hands
back "unavailable", and the client is told ``temporarily_unavailable``. The dashboard starts
the same hop without an authorization (:func:`upstream_hop_start` with ``authorization=None``).

The provider's ``state`` is single-use, created only after consent, and bound to this browser
session (it lives in the session, which only this browser's cookie opens) and to the pending
authorization it resumes. The provider object comes from the connector's kind
(``connectors/base.py``): nothing here knows a provider. What a provider keeps for its callback
(``AuthorizationStart.flow``: endpoints, client identity, PKCE verifier) lives with the state,
server-side.

A kind may instead ask each member for a secret (``credential_label``): the hop then shows the
platform's own form, ``/upstream/<provider>/credential``, under the same single-use state.
"""

import secrets
import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from authserver.resume import awaiting_get, awaiting_hand_back
from connectors.base import (
    AuthorizationStart,
    UpstreamReauthRequired,
    UpstreamUnavailable,
    all_kinds,
    get_kind,
)
from events.models import Event
from events.services import event_record_for_request
from tenants.models import Connector
from tenants.selectors import connector_holds_upstream
from upstream.selectors import UNUSABLE, shared_upstream_problem
from upstream.services import (
    connector_provider,
    connector_settings_opened,
    upstream_connection_for,
    upstream_connection_store,
)

STATES_KEY = "upstream_states"
STATE_LIFETIME = 900


def callback_url(provider: str) -> str:
    """The one redirect URI to register with the provider."""
    return f"{settings.PUBLIC_URL}/upstream/{provider}/callback"


def _page(request, title, message, status):
    return render(
        request, "authserver/message.html", {"title": title, "message": message}, status=status
    )


def upstream_hop_start(request, *, connector: Connector, authorization: dict | None):
    """Redirect to the provider (or the platform's credential page). ``authorization`` is the
    pending authorization to hand back (``{"id": ..., "client_id": ...}``), or None when
    connecting from the dashboard (the tenant's shared account, or the member's own)."""
    kind = get_kind(connector.kind)
    provider = kind.upstream.provider
    state = secrets.token_urlsafe(32)
    entry = {
        "connector_id": connector.pk,
        "authorization": authorization,
        "for_user": connector.mode == Connector.Mode.PER_USER,
        "created": time.time(),
    }
    detail = {"provider": provider, "mode": connector.mode, "from_client": bool(authorization)}
    label = _credential_label(connector)
    if label:
        target = reverse("upstream-credential", args=[provider]) + "?" + urlencode({"state": state})
        detail["credential"] = label
    else:
        try:
            start = connector_provider(connector).authorization_url(
                state=state, redirect_uri=callback_url(provider)
            )
        except (UpstreamReauthRequired, UpstreamUnavailable) as exc:
            event_record_for_request(
                request,
                kind="upstream.hop",
                outcome=Event.Outcome.ERROR,
                connector=connector,
                user_id=request.user.pk,
                client_id=_client_id(authorization),
                status_code=502,
                detail={**detail, "error": str(exc)[:300]},
            )
            if authorization:
                return awaiting_hand_back(
                    request,
                    authorization["id"],
                    unavailable=f"The {kind.title} sign-in could not start: {exc}",
                )
            return _page(
                request,
                f"Could not reach {kind.title}",
                f"The upstream sign-in could not start: {exc}",
                502,
            )
        target = start
        if isinstance(start, AuthorizationStart):
            target, entry["flow"] = start.url, dict(start.flow)
            detail["steps"] = list(start.steps)[-12:]
    states = {
        key: value
        for key, value in request.session.get(STATES_KEY, {}).items()
        if value["created"] > time.time() - STATE_LIFETIME
    }
    states[state] = entry
    request.session[STATES_KEY] = states
    event_record_for_request(
        request,
        kind="upstream.hop",
        connector=connector,
        user_id=request.user.pk,
        client_id=_client_id(authorization),
        detail=detail,
    )
    return redirect(target)


def _credential_label(connector: Connector) -> str | None:
    upstream = get_kind(connector.kind).upstream
    if upstream.credential_label is None:
        return None
    return upstream.credential_label(connector.settings)


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
    problem = shared_upstream_problem(connector=connector)
    if problem:
        # Lost since the consent page said it was fine (or a remembered consent): the client
        # is told temporarily_unavailable by the authorization server.
        event_record_for_request(
            request,
            kind="upstream.hop",
            outcome=Event.Outcome.ERROR,
            connector=connector,
            user_id=request.user.pk,
            client_id=pending["client_id"],
            status_code=302,
            detail={"mode": connector.mode, "error": "shared account not usable"},
        )
        return awaiting_hand_back(request, authorization_id, unavailable=problem)
    connection = upstream_connection_for(connector=connector, user_id=request.user.pk)
    if connection is not None and connection.status not in UNUSABLE:
        return awaiting_hand_back(request, authorization_id)
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
    flow = {"flow": entry["flow"]} if "flow" in entry else {}
    try:
        tokens = connector_provider(connector).exchange_code(
            params=request.GET, redirect_uri=callback_url(provider), **flow
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
        if authorization:
            return awaiting_hand_back(
                request,
                authorization["id"],
                unavailable=f"{kind.title} did not accept the sign-in ({exc})",
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
            f"{whose} {kind.title} account "
            f"{tokens.external_account_name or tokens.external_account_id} is connected to "
            f"{connector.display_name}. Clients connected to {connector.url} can use it now.",
            200,
        )
    return awaiting_hand_back(request, authorization["id"])


@login_required
def upstream_credential(request, provider: str):
    """``/upstream/<provider>/credential``: a member types the secret the upstream wants
    (per-member header auth), under the hop's single-use state."""
    state = request.POST.get("state") or request.GET.get("state", "")
    entry = request.session.get(STATES_KEY, {}).get(state) if state else None
    if entry is None or entry["created"] < time.time() - STATE_LIFETIME:
        return _invalid_state(request)
    connector = Connector.objects.select_related("tenant").get(pk=entry["connector_id"])
    label = _credential_label(connector)
    if not label:
        raise Http404("this connector takes no typed credential")
    error = ""
    if request.method == "POST":
        try:
            tokens = connector_provider(connector).accept_credential(
                request.POST.get("credential", "")
            )
        except (UpstreamReauthRequired, UpstreamUnavailable) as exc:
            error = str(exc)
        else:
            entry = _take_state(request, state, provider)
            if entry is None:
                return _invalid_state(request)
            return _connected(request, entry, connector, provider, tokens)
    return render(
        request,
        "authserver/upstream_credential.html",
        {
            "connector": connector,
            "label": label,
            "upstream": connector_settings_opened(connector).get("upstream_url", ""),
            "state": state,
            "error": error,
        },
        status=400 if error else 200,
    )


def upstream_client_metadata(request, provider: str):
    """``/upstream/<provider>/client-metadata.json``: who the platform is, as the OAuth client
    of an upstream (a client ID metadata document)."""
    for kind in all_kinds().values():
        upstream = kind.upstream
        if upstream is not None and upstream.provider == provider and upstream.client_metadata:
            response = JsonResponse(upstream.client_metadata(callback_url(provider)))
            response["Cache-Control"] = "public, max-age=3600"
            return response
    return JsonResponse(
        {"error": "not_found", "error_description": "No client metadata for this provider"},
        status=404,
    )
