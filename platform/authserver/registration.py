"""Client registration policy: RFC 7591 DCR for anonymous clients, and CIMD documents."""

import ipaddress
import json
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.http import JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.common import no_append_slash
from oauth2_provider.cimd import (
    CIMDError,
    SafeMetadataFetcher,
    _effective_max_age,
    _validate_client_id_url,
)
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken
from oauth2_provider.views import (
    DynamicClientRegistrationManagementView,
    DynamicClientRegistrationView,
)
from oauth2_provider.views.dynamic_client_registration import (
    _application_to_response,
    _build_application_kwargs,
    _check_permissions,
    _issue_registration_token,
    _validation_error_description,
)

from config.limits import limit_hit
from config.proxy import client_address
from events.models import Event
from events.services import event_record_for_request

MAX_REGISTRATION_BYTES = 16 * 1024
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
# What the metadata advertises: DOT's DCR would also register client_credentials, password,
# implicit and device-code clients, none of which this server lets anyone use.
SUPPORTED_GRANT_TYPES = {"authorization_code", "refresh_token"}
SUPPORTED_RESPONSE_TYPES = {"code"}


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` may not be registered, or None. http only on loopback (RFC 8252)."""
    parts = urlsplit(uri)
    if parts.fragment:
        return f"{uri}: redirect URIs must not contain a fragment"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return f"{uri}: plain http is allowed only for loopback redirect URIs"
    if parts.scheme == "https" and not parts.hostname:
        return f"{uri}: https redirect URIs need a host"
    return None


def application_type_problem(data: dict) -> str | None:
    """Why the redirect URIs do not fit the declared ``application_type``, or None.

    OpenID Connect Dynamic Registration, which the 2026-07-28 revision asks DCR clients to
    follow: a "web" client redirects to https hosts, never to loopback or a custom scheme. A
    "native" one is not held to loopback and custom schemes only: the official SDKs send
    "native" by default whatever their redirect URIs are (an https host included), and refusing
    those would fail their whole registration. A client that declares nothing is not checked.
    """
    if "application_type" not in data:
        return None
    kind = data["application_type"]
    if kind not in ("web", "native"):
        return f'application_type must be "web" or "native", not {kind!r}'
    if kind == "native":
        return None
    for uri in data.get("redirect_uris") or []:
        if not isinstance(uri, str):
            continue
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or parts.hostname in LOOPBACK_HOSTS:
            return (
                f'{uri}: a "web" client redirects to https hosts only; register loopback and '
                'custom-scheme redirect URIs with application_type "native"'
            )
    return None


def _body_too_big(request) -> bool:
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_REGISTRATION_BYTES:
        return True
    try:
        # A chunked request has no Content-Length: measure what was actually sent.
        return len(request.body) > MAX_REGISTRATION_BYTES
    except RequestDataTooBig:  # beyond DATA_UPLOAD_MAX_MEMORY_SIZE
        return True


def _grant_problem(data: dict) -> str | None:
    """Why the requested grant or response types are not offered here, or None."""
    grant_types = data.get("grant_types", ["authorization_code"])
    if isinstance(grant_types, list):
        unsupported = [g for g in grant_types if g not in SUPPORTED_GRANT_TYPES]
        if unsupported:
            return (
                f"Unsupported grant_types {unsupported!r}: this server offers "
                "authorization_code and refresh_token"
            )
    response_types = data.get("response_types", ["code"])
    if not isinstance(response_types, list) or not all(
        t in SUPPORTED_RESPONSE_TYPES for t in response_types
    ):
        return 'response_types must be ["code"]'
    return None


def _error(error: str, description: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": error, "error_description": description}, status=status)


def _application_create(request, data: dict) -> JsonResponse:
    """The client DOT's RFC 7591 mapping makes of ``data``, stored, and the answer to send (with
    an RFC 7592 registration access token, which can read or delete it, never change it)."""
    app_kwargs, error = _build_application_kwargs(data)
    if error is not None:
        return error
    application = Application(registration_source=Application.RegistrationSource.DCR, **app_kwargs)
    secret = application.client_secret if application.client_type == "confidential" else None
    try:
        # The only unique field is the client_id just generated at random; the database's
        # constraint stands behind it, without a SELECT per registration.
        application.full_clean(validate_unique=False)
    except ValidationError as exc:
        return _error("invalid_client_metadata", _validation_error_description(exc))
    with transaction.atomic():
        application.save()
        registration_token = _issue_registration_token(application, None)
    body = _application_to_response(application, registration_token, request)
    body["client_id_issued_at"] = int(time.time())
    # DOT accepts both secret methods from a confidential client: answer with the one asked.
    body["token_endpoint_auth_method"] = data.get(
        "token_endpoint_auth_method", "client_secret_basic"
    )
    if secret:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0
    for field in ("application_type", "scope", "client_uri", "logo_uri", "software_id"):
        if field in data:
            body[field] = data[field]
    response = JsonResponse(body, status=201)
    response["Cache-Control"] = "no-store"
    return response


@method_decorator(no_append_slash, name="dispatch")
class RegisterView(DynamicClientRegistrationView):
    """RFC 7591 registration on DOT's metadata mapping, with our rate limit, size limit and
    redirect URI policy."""

    http_method_names = ["post", "options"]

    def post(self, request, *args, **kwargs):
        started = time.monotonic()
        response, data = self._register(request, *args, **kwargs)
        body = json.loads(response.content) if response.content else {}
        event_record_for_request(
            request,
            kind="oauth.register",
            outcome=Event.Outcome.OK if response.status_code == 201 else Event.Outcome.ERROR,
            client_id=body.get("client_id", ""),
            status_code=response.status_code,
            duration_ms=int((time.monotonic() - started) * 1000),
            detail={
                "client_name": (data or {}).get("client_name", ""),
                "redirect_uris": (data or {}).get("redirect_uris", []),
                "error": body.get("error", ""),
                "error_description": body.get("error_description", ""),
            },
        )
        return response

    def _register(self, request, *args, **kwargs):
        if not _check_permissions(request):  # DCR_REGISTRATION_PERMISSION_CLASSES
            return _error("access_denied", "Registration is not open to this caller", 401), None
        address = client_address(request) or "unknown"
        if limit_hit(
            f"dcr:{address}", limit=settings.DCR_RATE_LIMIT, window=settings.DCR_RATE_WINDOW
        ):
            response = _error(
                "too_many_requests", "Too many registrations from this address; retry later", 429
            )
            response["Retry-After"] = str(settings.DCR_RATE_WINDOW)
            return response, None
        if _body_too_big(request):
            return _error(
                "invalid_client_metadata",
                f"Registration request larger than {MAX_REGISTRATION_BYTES} bytes",
            ), None
        try:
            data = json.loads(request.body)
        except ValueError:
            return _error("invalid_client_metadata", "Request body must be valid JSON"), None
        if not isinstance(data, dict):
            return _error("invalid_client_metadata", "Request body must be a JSON object"), None
        problem = _grant_problem(data)
        if problem:
            return _error("invalid_client_metadata", problem), data
        problem = application_type_problem(data)
        if problem:
            return _error("invalid_redirect_uri", problem), data
        redirect_uris = data.get("redirect_uris")
        if isinstance(redirect_uris, list):
            for uri in redirect_uris:
                problem = isinstance(uri, str) and redirect_uri_problem(uri)
                if problem:
                    return _error("invalid_redirect_uri", problem), data
        return _application_create(request, data), data


@method_decorator(no_append_slash, name="dispatch")
class RegistrationManagementView(DynamicClientRegistrationManagementView):
    """RFC 7592 read and delete (the doctor removes its test registrations this way); no PUT.

    DOT's PUT skips every registration rule (redirect policy, grant types, size, rate limit): a
    registration keeps what POST /register accepted, and a client that needs other metadata
    registers again. Registration access tokens expire (DCR_REGISTRATION_TOKEN_EXPIRE_SECONDS).
    """

    http_method_names = ["get", "delete", "options"]

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = _error(
            "invalid_request",
            "A registration cannot be changed here; register a new client instead",
            405,
        )
        response["Allow"] = "GET, DELETE, OPTIONS"
        return response


class CIMDFetcher(SafeMetadataFetcher):
    """DOT's SSRF-guarded fetcher, and the registration redirect policy on every document.

    With ``CIMD_ALLOW_HTTP_LOOPBACK`` (tests only), a client id such as
    ``https://127.0.0.1:PORT/client.json`` is fetched over plain http from that loopback port.
    """

    def fetch(self, client_id):
        data, max_age = self._fetch(client_id)
        # DOT checks only the scheme list: a document is a registration and gets the same rules.
        # A refused document is a failed fetch (DOT keeps the last good one of a known client).
        redirect_uris = data.get("redirect_uris")
        for uri in redirect_uris if isinstance(redirect_uris, list) else []:
            problem = isinstance(uri, str) and redirect_uri_problem(uri)
            if problem:
                raise CIMDError(problem)
        return data, max_age

    def _fetch(self, client_id):
        parts = urlsplit(client_id)
        if not (settings.CIMD_ALLOW_HTTP_LOOPBACK and _is_loopback(parts.hostname)):
            return super().fetch(client_id)
        _validate_client_id_url(client_id)  # the spec's shape rules hold here too
        try:
            response = httpx.get(
                client_id.replace("https://", "http://", 1), timeout=5, follow_redirects=False
            )
        except httpx.HTTPError as exc:
            raise CIMDError(f"could not fetch client_id document: {exc}") from exc
        if response.status_code != 200:
            raise CIMDError(f"client_id document returned HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise CIMDError("client_id document is not valid JSON") from exc
        if not isinstance(data, dict):
            raise CIMDError("client_id document must be a JSON object")
        return data, _effective_max_age(response.headers.get("Cache-Control"))


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def public_client_holds_no_secret(sender, instance, **kwargs) -> None:
    """pre_save of every client (DCR, CIMD, admin): a public client never authenticates, so it
    is given no secret (DOT's model generates and hashes one by default)."""
    if instance.client_type == Application.CLIENT_PUBLIC:
        instance.client_secret = ""
        instance.hash_client_secret = False


def registrations_prune(*, now=None) -> int:
    """Delete dynamic registrations that never obtained a grant or token; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.UNUSED_REGISTRATION_LIFETIME)
    unused = (
        Application.objects.filter(
            registration_source=Application.RegistrationSource.DCR, created__lt=cutoff
        )
        .annotate(
            has_grant=Exists(Grant.objects.filter(application=OuterRef("pk"))),
            has_refresh=Exists(RefreshToken.objects.filter(application=OuterRef("pk"))),
            has_token=Exists(
                AccessToken.objects.filter(application=OuterRef("pk")).exclude(
                    scope=settings.OAUTH2_PROVIDER.get(
                        "DCR_REGISTRATION_SCOPE", "oauth2_provider:registration"
                    )
                )
            ),
        )
        .filter(has_grant=False, has_refresh=False, has_token=False)
    )
    stale_ids = list(unused.values_list("pk", flat=True))
    Application.objects.filter(pk__in=stale_ids).delete()
    return len(stale_ids)
