"""The authorization endpoint with connector consent, and the token endpoints' trace."""

import json
import secrets
import time
from base64 import b64decode
from copy import copy
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.common import no_append_slash
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.models import Application
from oauth2_provider.oauth2_backends import _add_iss_to_redirect
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.signals import app_authorized
from oauth2_provider.views import RevokeTokenView, TokenView
from oauth2_provider.views.base import BaseAuthorizationView
from oauthlib.oauth2.rfc6749.errors import AccessDeniedError, CustomOAuth2Error

from authserver.availability import connector_unavailable_reason
from authserver.consent import (
    cimd_host,
    client_digest,
    consent_record,
    consent_remembered,
    redirect_hosts,
)
from authserver.resume import awaiting_keep, awaiting_take
from authserver.scopes import all_scopes
from authserver.validator import authenticated_client, exchanged_for_connector
from config.limits import limit_hit, limit_reached
from config.proxy import client_address
from events.models import Event
from events.services import event_record_for_request
from identity.flow import start_url
from identity.selectors import provider_for_next_url
from tenants.models import Connector
from tenants.selectors import (
    connector_from_url,
    connector_holds_upstream,
    connectors_usable_by,
    membership_for,
)

PENDING_KEY = "pending_authorizations"
MAX_PENDING = 10
UNAVAILABLE = "temporarily_unavailable"  # RFC 6749 4.1.2.1
UNAVAILABLE_DEFAULT = "The connector cannot be used right now."


def _page(request, title: str, message: str, status: int):
    return render(
        request, "authserver/message.html", {"title": title, "message": message}, status=status
    )


@method_decorator(no_append_slash, name="dispatch")
class AuthorizeView(BaseAuthorizationView):
    """GET validates the request and shows consent; POST records the user's answer.

    The pending request lives in the signed-in user's session (not in hidden form fields), so
    what the user approved is exactly what was validated.
    """

    def handle_no_permission(self):
        """Not signed in: a tenant that signs in only through its identity provider sends the
        person straight there (the connector names the tenant); everyone else signs in here."""
        provider = provider_for_next_url(self.request.get_full_path())
        if provider is not None and not provider.local_passwords_allowed:
            return redirect(start_url(provider, self.request.get_full_path()))
        return super().handle_no_permission()

    def get(self, request, *args, **kwargs):
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self._error(error, application=None)
        # oauthlib loaded the client to validate the request (DOT's _load_application).
        application = credentials["request"].client

        resources = request.GET.getlist("resource")
        connector = connector_from_url(resources[0]) if len(resources) == 1 else None
        problem = self._request_problem(request, credentials, resources, connector)
        if problem:
            return self._error(problem, application)

        if connector is not None:
            refusal = self._refusal(request, connector)
            if refusal:
                self._record(
                    request,
                    "oauth.authorize",
                    Event.Outcome.DENIED,
                    connector,
                    application,
                    status=403,
                    detail={"reason": "member_or_connector_refused"},
                )
                return refusal
            choices = [connector]
        else:
            choices = connectors_usable_by(request.user)
            if not choices:
                self._record(
                    request,
                    "oauth.authorize",
                    Event.Outcome.DENIED,
                    None,
                    application,
                    status=403,
                    detail={"reason": "no_connectors"},
                )
                return _page(
                    request,
                    "No connector available",
                    f"{request.user.username} is not a member of any tenant with an enabled "
                    "connector, so there is nothing this client could be connected to.",
                    403,
                )

        # What the member cannot fix on the way (the tenant's shared upstream account is not
        # connected): said before Allow, and the client is told instead of getting a code.
        unavailable = {
            choice.pk: reason
            for choice in choices
            if (reason := connector_unavailable_reason(connector=choice, user=request.user))
        }
        pending = {
            "client_id": credentials["client_id"],
            "redirect_uri": credentials["redirect_uri"],
            "response_type": credentials["response_type"],
            "state": credentials.get("state"),
            "code_challenge": credentials["code_challenge"],
            "code_challenge_method": credentials["code_challenge_method"],
            "scopes": list(scopes),
            "connector_id": connector.pk if connector else None,
            # What the consent page shows of the client: the approval is for exactly that.
            "client_digest": client_digest(application),
        }
        self._record(
            request,
            "oauth.authorize",
            Event.Outcome.OK,
            connector,
            application,
            status=200,
            detail={"resource_sent": bool(resources), "unavailable": bool(unavailable)},
        )

        if (
            connector
            and not unavailable
            and consent_remembered(
                user=request.user,
                application=application,
                connector=connector,
                redirect_uri=credentials["redirect_uri"],
                scopes=scopes,
            )
        ):
            return self.complete(request, pending, connector, application=application)

        pending_id = secrets.token_urlsafe(16)
        stored = request.session.get(PENDING_KEY, {})
        # Keep the newest few: a user may start several connects in parallel tabs.
        stored = dict(list(stored.items())[-(MAX_PENDING - 1) :])
        stored[pending_id] = pending
        request.session[PENDING_KEY] = stored
        return render(
            request,
            "authserver/consent.html",
            {
                "pending_id": pending_id,
                "application": application,
                "client_name": application.name or "An unnamed client",
                "redirect_host": urlsplit(credentials["redirect_uri"]).netloc
                or credentials["redirect_uri"],
                "registered_redirect_hosts": redirect_hosts(application),
                "cimd_host": cimd_host(application),
                "connector": connector,
                "choices": [(choice, unavailable.get(choice.pk, "")) for choice in choices],
                "unavailable": unavailable.get(connector.pk, "") if connector else "",
                "all_unavailable": len(unavailable) == len(choices),
                "connect_url": (
                    reverse("connector-connect", args=[connector.pk])
                    if connector and unavailable and _is_admin(request.user, connector)
                    else ""
                ),
                "scopes": [(scope, all_scopes().get(scope, scope)) for scope in scopes],
            },
        )

    def post(self, request, *args, **kwargs):
        pending = request.session.get(PENDING_KEY, {}).pop(request.POST.get("pending", ""), None)
        request.session.modified = True
        if pending is None:
            return _page(
                request,
                "This authorization has expired",
                "It was already answered or is too old. "
                "Start the connection again from your client.",
                400,
            )
        application = Application.objects.filter(client_id=pending["client_id"]).first()
        if application is None:
            return _page(
                request, "Unknown client", "This client registration no longer exists.", 400
            )

        answer = request.POST.get("allow")
        if answer not in ("yes", "unavailable"):
            self._record(
                request,
                "oauth.consent",
                Event.Outcome.DENIED,
                None,
                application,
                status=302,
                detail={"reason": "user_denied"},
            )
            error = OAuthToolkitError(
                AccessDeniedError(state=pending.get("state")), redirect_uri=pending["redirect_uri"]
            )
            return self._error(error, application)

        connector_id = pending["connector_id"] or request.POST.get("connector", "")
        connector = (
            Connector.objects.select_related("tenant").filter(pk=connector_id).first()
            if str(connector_id).isdigit()
            else None
        )
        if connector is None:
            return _page(request, "Choose a connector", "No connector was chosen.", 400)
        refusal = self._refusal(request, connector)
        if refusal:
            return refusal
        # Checked again: the page may be older than the connection's last change.
        reason = connector_unavailable_reason(connector=connector, user=request.user)
        if reason or answer != "yes":
            return self._unavailable(
                request, pending, connector, application, reason or UNAVAILABLE_DEFAULT
            )
        consent_record(
            user=request.user,
            application=application,
            connector=connector,
            redirect_uri=pending["redirect_uri"],
            digest=pending.get("client_digest", ""),
            scope=" ".join(pending["scopes"]),
        )
        self._record(request, "oauth.consent", Event.Outcome.OK, connector, application, status=302)
        return self.complete(request, pending, connector, application=application)

    # --- helpers -------------------------------------------------------------------------

    def _request_problem(
        self, request, credentials, resources: list[str], connector: Connector | None
    ) -> OAuthToolkitError | None:
        """Checks DOT makes only after consent (or not at all), made before showing it
        (``connector``: the one ``resources`` names, when it names one)."""

        def problem(error: str, description: str) -> OAuthToolkitError:
            return OAuthToolkitError(
                CustomOAuth2Error(
                    error=error, description=description, state=credentials.get("state")
                ),
                redirect_uri=credentials["redirect_uri"],
            )

        if (
            credentials.get("code_challenge_method") != "S256"
            or "code_challenge_method" not in request.GET
        ):
            return problem("invalid_request", "PKCE with code_challenge_method=S256 is required")
        if len(resources) > 1:
            return problem("invalid_target", "Request one connector per authorization")
        if resources and connector is None:
            return problem("invalid_target", f"{resources[0]} is not a connector of this server")
        return None

    def _unavailable(self, request, pending, connector, application, reason: str):
        """The connector cannot serve this member now: the client hears
        ``temporarily_unavailable`` (with state and iss), never a code that cannot work."""
        self._record(
            request,
            "oauth.consent",
            Event.Outcome.ERROR,
            connector,
            application,
            status=302,
            detail={"error": UNAVAILABLE, "reason": reason[:300]},
        )
        return client_redirect_error(pending, UNAVAILABLE, reason)

    def _refusal(self, request, connector: Connector):
        if not connector.enabled or not connector.tenant.enabled:
            return _page(
                request,
                "Connector disabled",
                f"{connector.display_name} of {connector.tenant.name} is disabled by its admins.",
                403,
            )
        if membership_for(user=request.user, tenant_id=connector.tenant_id) is None:
            return _page(
                request,
                "Not a member",
                f"{request.user.username} is not a member of {connector.tenant.name}, so this "
                f"client cannot be connected to its {connector.display_name} connector. Ask "
                "a tenant admin to invite you, or sign in as another user.",
                403,
            )
        return None

    def complete(self, request, pending, connector, *, application=None, after_hop: bool = False):
        """After consent: the upstream hop when the connector holds upstream connections (the
        upstream app hands the authorization back to the resume URL), then the code.
        ``application``: the pending client, when this request has loaded it already."""
        if application is None:
            application = Application.objects.filter(client_id=pending["client_id"]).first()
        if application is None:
            return _unknown_client(request)
        if not after_hop and connector_holds_upstream(connector):
            authorization_id = awaiting_keep(request, {**pending, "connector_id": connector.pk})
            return redirect(reverse("upstream-hop", args=[authorization_id]))
        credentials = {
            key: pending[key]
            for key in (
                "client_id",
                "redirect_uri",
                "response_type",
                "state",
                "code_challenge",
                "code_challenge_method",
            )
            if pending.get(key) is not None
        }
        credentials["resource"] = [connector.url]
        credentials["connector_id"] = connector.pk  # the grant's audience row (validator)
        # oauthlib validates the client again; DOT reuses a loaded one that is still usable.
        credentials["client"] = application
        try:
            with transaction.atomic():
                uri, _headers, _body, _status = self.create_authorization_response(
                    request=_authorize_request(request),
                    scopes=" ".join(pending["scopes"]),
                    credentials=credentials,
                    allow=True,
                )
        except OAuthToolkitError as error:
            return self._error(error, application)
        self._record(
            request,
            "oauth.code_issued",
            Event.Outcome.OK,
            connector,
            application,
            status=302,
            detail={"redirect_host": urlsplit(pending["redirect_uri"]).netloc},
        )
        return OAuth2ResponseRedirect(uri, application.get_allowed_schemes())

    def _error(self, error: OAuthToolkitError, application):
        redirect, response = self.error_response_parts(error)
        if redirect and response["error"].redirect_uri:
            # Not fatal: oauthlib has validated client and redirect_uri, so the error goes back
            # to the client (RFC 6749 4.1.2.1), with iss (RFC 9207).
            schemes = (
                application.get_allowed_schemes()
                if application is not None
                else oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES
            )
            return OAuth2ResponseRedirect(
                _add_iss_to_redirect(response["url"], settings.PUBLIC_URL), schemes
            )
        oauth_error = response["error"]
        return _page(
            self.request,
            "This connection request is not valid",
            f"{oauth_error.error}: {oauth_error.description or ''} The client that sent you "
            "here is misconfigured or its registration has expired; reconnect from the client.",
            oauth_error.status_code or 400,
        )

    def error_response_parts(self, error):
        return super(BaseAuthorizationView, self).error_response(error)

    def _record(self, request, kind, outcome, connector, application, *, status, detail=None):
        event_record_for_request(
            request,
            kind=kind,
            outcome=outcome,
            connector=connector,
            user_id=request.user.pk if request.user.is_authenticated else None,
            client_id=application.client_id if application else "",
            status_code=status,
            detail=detail or {},
        )


@method_decorator(no_append_slash, name="dispatch")
class ResumeAuthorizationView(AuthorizeView):
    """``/authorize/resume/<authorization>``: continue an authorization the upstream hop has
    handed back (once); anything else is refused with a page."""

    def get(self, request, authorization_id: str, *args, **kwargs):
        taken = awaiting_take(request, authorization_id)
        if taken is None:
            return _page(
                request,
                "This authorization cannot be resumed",
                "It was already completed, has expired, or its upstream sign-in has not "
                "finished. Start the connection again from your client.",
                400,
            )
        pending, outcome = taken
        if outcome.get("denied"):
            return client_redirect_error(pending, "access_denied", outcome["denied"])
        connector = (
            Connector.objects.select_related("tenant").filter(pk=pending["connector_id"]).first()
        )
        if connector is None:
            return _page(request, "Connector removed", "This connector no longer exists.", 400)
        if outcome.get("unavailable"):
            application = Application.objects.filter(client_id=pending["client_id"]).first()
            return self._unavailable(
                request, pending, connector, application, outcome["unavailable"]
            )
        refusal = self._refusal(request, connector)
        if refusal:
            return refusal
        return self.complete(request, pending, connector, after_hop=True)

    def post(self, request, *args, **kwargs):
        return _page(request, "Not allowed", "This address only continues a sign-in.", 405)


def _is_admin(user, connector: Connector) -> bool:
    membership = membership_for(user=user, tenant_id=connector.tenant_id)
    return membership is not None and membership.role == membership.Role.ADMIN


def _unknown_client(request):
    return _page(request, "Unknown client", "This client registration no longer exists.", 400)


def _authorize_request(request):
    """The request oauthlib re-parses when it issues the code: what it grants comes from the
    pending authorization only, never from this request's query string."""
    if not request.GET:
        return request
    clean = copy(request)
    clean.GET = QueryDict()
    clean.META = {**request.META, "QUERY_STRING": ""}
    return clean


def client_redirect_error(pending: dict, error: str, description: str):
    """Send an OAuth error (with state and iss) to the pending authorization's client."""
    application = Application.objects.filter(client_id=pending["client_id"]).first()
    # RFC 6749 allows printable ASCII but `"` and `\` in error_description.
    description = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in description)
    query = {"error": error, "error_description": description, "iss": settings.PUBLIC_URL}
    if pending.get("state"):
        query["state"] = pending["state"]
    separator = "&" if "?" in pending["redirect_uri"] else "?"
    schemes = (
        application.get_allowed_schemes()
        if application
        else oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES
    )
    return OAuth2ResponseRedirect(pending["redirect_uri"] + separator + urlencode(query), schemes)


def _claimed_client_id(request) -> str:
    """The client id a /token request claims (body or Basic header), not yet proven."""
    if request.POST.get("client_id"):
        return request.POST["client_id"]
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    if auth.startswith("Basic "):
        try:
            return b64decode(auth[6:]).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


@method_decorator([csrf_exempt, no_append_slash], name="dispatch")
class TracedTokenView(TokenView):
    """DOT's token endpoint, recording each exchange and refresh in the connector trace."""

    def post(self, request, *args, **kwargs):
        started = time.monotonic()
        reset = authenticated_client.set("")
        reset_exchanged = exchanged_for_connector.set(None)
        try:
            response = self._authenticated_token_response(request, *args, **kwargs)
            client_id = authenticated_client.get()
            exchanged = exchanged_for_connector.get() if response.status_code == 200 else None
        finally:
            authenticated_client.reset(reset)
            exchanged_for_connector.reset(reset_exchanged)
        try:
            body = json.loads(response.content)
        except ValueError:
            body = {}
        resource = request.POST.get("resource", "")
        grant_type = request.POST.get("grant_type", "")
        # Whatever a client that did not authenticate wrote (its client_id, the resource) is
        # not ours to put in a tenant's trace.
        event_record_for_request(
            request,
            kind="oauth.token" if grant_type != "refresh_token" else "oauth.refresh",
            outcome=Event.Outcome.OK if response.status_code == 200 else Event.Outcome.ERROR,
            # A code exchanged for a resource: DOT checked it is the grant's, whose connector
            # the validator read with the grant.
            connector=(exchanged or connector_from_url(resource))
            if resource and client_id
            else None,
            client_id=client_id,
            anonymous=response.status_code != 200,
            status_code=response.status_code,
            duration_ms=int((time.monotonic() - started) * 1000),
            detail={
                "grant_type": grant_type,
                "resource_sent": bool(resource),
                "error": body.get("error", ""),
                "error_description": body.get("error_description", ""),
            },
        )
        return response

    @method_decorator(sensitive_post_parameters("password", "client_secret"))
    def authorization_flow_token_response(self, request, *args, **kwargs):
        """DOT's, without reading the new access token back when nothing listens to
        ``app_authorized`` (the signal it is read for)."""
        if app_authorized.receivers:
            return super().authorization_flow_token_response(request, *args, **kwargs)
        _url, headers, body, status = self.create_token_response(request)
        response = HttpResponse(content=body, status=status)
        for name, value in headers.items():
            response[name] = value
        return response

    def _authenticated_token_response(self, request, *args, **kwargs):
        """DOT's answer, unless this client has failed to authenticate from this address too
        often lately: then a refusal that checks nothing (no lookup, no digest)."""
        failures = f"client-auth:{_claimed_client_id(request)}:{client_address(request)}"
        limit = settings.CLIENT_AUTH_FAILURE_LIMIT
        window = settings.CLIENT_AUTH_FAILURE_WINDOW
        if limit_reached(failures, limit=limit, window=window):
            response = JsonResponse(
                {
                    "error": "invalid_client",
                    "error_description": "Too many failed client authentications from this "
                    "address; retry later",
                },
                status=429,
            )
            response["Retry-After"] = str(window)
            response["Cache-Control"] = "no-store"
            return response
        response = super().post(request, *args, **kwargs)
        if response.status_code == 401:  # invalid_client: unknown client or wrong secret
            limit_hit(failures, limit=limit, window=window)
        return response


@method_decorator([csrf_exempt, no_append_slash], name="dispatch")
class RevokeView(RevokeTokenView):
    pass
