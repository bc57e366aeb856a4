"""Intuit's OAuth 2.0 / OpenID Connect endpoints: discovery, authorize, token, revoke, userinfo."""

from __future__ import annotations

import base64
import binascii
import json
from html import escape
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .gate import emulator_of, enter_endpoint
from .state import DEFAULT_USER_EMAIL, Emulator
from .tokens import ACCOUNTING_SCOPE, OAuthFailure

AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/v2/oauth2/tokens/revoke"
USERINFO_PATH = "/v1/openid_connect/userinfo"
JWKS_PATH = "/op/v1/jwks"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def discovery_document(emulator: Emulator) -> dict:
    base = emulator.base_url
    return {
        "issuer": emulator.issuer,
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "userinfo_endpoint": base + USERINFO_PATH,
        "revocation_endpoint": base + REVOKE_PATH,
        "jwks_uri": base + JWKS_PATH,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "scopes_supported": ["openid", "email", "profile", "address", "phone", ACCOUNTING_SCOPE],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
    }


async def discovery(request: Request) -> Response:
    if (injected := await enter_endpoint(request, "discovery")) is not None:
        return injected
    return JSONResponse(discovery_document(emulator_of(request)))


async def jwks(request: Request) -> Response:
    # ID tokens are HS256 (keyed with the client secret), so there is no public key to publish.
    return JSONResponse({"keys": []})


# --- authorize ------------------------------------------------------------------------------


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    return HTMLResponse(
        _page("Cannot connect", f'<p class="error">{escape(message)}</p>'), status_code=status
    )


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · Intuit emulator</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f8; margin: 0; }}
main {{ max-width: 28rem; margin: 4rem auto; background: #fff; padding: 2rem;
        border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 1.4rem; margin-top: 0; }} label {{ display: block; margin: 1rem 0 .3rem; }}
input, select {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
.buttons {{ display: flex; gap: 1rem; margin-top: 1.5rem; }}
button {{ flex: 1; padding: .6rem; font-size: 1rem; border-radius: 4px; cursor: pointer; }}
button[value=approve] {{ background: #2ca01c; color: #fff; border: 0; }}
.note {{ color: #666; font-size: .85rem; }} .error {{ color: #b00020; }}
</style></head><body><main><h1>{escape(title)}</h1>{body}
<p class="note">Local Intuit emulator for development and tests; no real Intuit account is used.</p>
</main></body></html>"""


def _consent_page(emulator: Emulator, params: dict[str, str]) -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(params.get(k, ""))}">'
        for k in ("client_id", "redirect_uri", "response_type", "scope", "state")
    )
    with emulator.lock:
        companies = [(realm, c.name) for realm, c in emulator.companies.items()]
    chosen = params.get("realm_id") or (companies[0][0] if companies else "new")
    options = "".join(
        f'<option value="{escape(realm)}"{" selected" if realm == chosen else ""}>'
        f"{escape(name)} ({escape(realm)})</option>"
        for realm, name in companies
    )
    options += (
        f'<option value="new"{" selected" if chosen == "new" else ""}>New sandbox company</option>'
    )
    host = urlsplit(params["redirect_uri"]).netloc
    scopes = ", ".join(params.get("scope", "").split())
    email = params.get("login_hint") or DEFAULT_USER_EMAIL
    body = f"""
<p><strong>{escape(params["client_id"])}</strong> wants to connect to your QuickBooks company
and will be sent back to <strong>{escape(host)}</strong>.</p>
<p class="note">Access requested: {escape(scopes)}</p>
<form method="post" action="{AUTHORIZE_PATH}">{hidden}
<label for="email">Signed in as</label>
<input id="email" name="email" type="email" value="{escape(email)}">
<label for="realm_id">Company</label>
<select id="realm_id" name="realm_id">{options}</select>
<div class="buttons">
<button type="submit" name="decision" value="approve">Connect</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</div></form>"""
    return HTMLResponse(_page("Connect to QuickBooks", body))


def _redirect(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)


def _check_client(emulator: Emulator, params: dict[str, str]) -> HTMLResponse | None:
    """Unknown clients and unregistered redirect URIs get an error page, never a redirect."""
    settings = emulator.settings
    if params.get("client_id") != settings.client_id:
        return _error_page("Unknown client_id.")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        return _error_page("redirect_uri is required.")
    if settings.redirect_uris is not None and redirect_uri not in settings.redirect_uris:
        return _error_page("The redirect_uri does not match the app's registered redirect URIs.")
    return None


def _check_request(params: dict[str, str]) -> dict[str, str] | None:
    """Errors the client can be told about by redirect (OAuth error codes)."""
    if params.get("response_type") != "code":
        return {"error": "unsupported_response_type"}
    if ACCOUNTING_SCOPE not in params.get("scope", "").split():
        return {"error": "invalid_scope"}
    return None


def _approve(emulator: Emulator, params: dict[str, str], realm_id: str | None, email: str):
    with emulator.lock:
        realm_id = (
            emulator.create_company() if realm_id == "new" else emulator.ensure_company(realm_id)
        )
        code = emulator.tokens.issue_code(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            realm_id=realm_id,
            user_email=email or DEFAULT_USER_EMAIL,
            scopes=tuple(params["scope"].split()),
            now=emulator.clock.now(),
        )
        emulator.counters["authorize.approved"] += 1
    return _redirect(
        params["redirect_uri"],
        {"code": code, "state": params.get("state", ""), "realmId": realm_id},
    )


async def authorize(request: Request) -> Response:
    """GET shows the consent page (or approves at once); POST is the page's answer."""
    if (injected := await enter_endpoint(request, "authorize")) is not None:
        return injected
    emulator = emulator_of(request)
    if request.method == "POST":
        params = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    else:
        params = dict(request.query_params)
    if (refused := _check_client(emulator, params)) is not None:
        return refused
    if (error := _check_request(params)) is not None:
        return _redirect(params["redirect_uri"], {**error, "state": params.get("state", "")})

    if request.method == "POST":
        if params.get("decision") != "approve":
            with emulator.lock:
                emulator.counters["authorize.denied"] += 1
            return _redirect(
                params["redirect_uri"], {"error": "access_denied", "state": params.get("state", "")}
            )
        return _approve(emulator, params, params.get("realm_id"), params.get("email", ""))

    if emulator.settings.auto_approve or params.get("auto_approve") in ("1", "true"):
        return _approve(emulator, params, params.get("realm_id"), params.get("login_hint", ""))
    return _consent_page(emulator, params)


# --- token, revoke, userinfo ----------------------------------------------------------------


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        client_id, separator, secret = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (client_id, secret) if separator else None


def _client_is_valid(emulator: Emulator, credentials: tuple[str, str] | None) -> bool:
    settings = emulator.settings
    return credentials == (settings.client_id, settings.client_secret)


def _oauth_error(status: int, error: str) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status, headers=NO_STORE)


async def token(request: Request) -> Response:
    """Code exchange and refresh; client auth by HTTP Basic or client_secret_post."""
    if (injected := await enter_endpoint(request, "token")) is not None:
        return injected
    emulator = emulator_of(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    credentials = _basic_credentials(request)
    if credentials is None and "client_id" in form:
        credentials = (form["client_id"], form.get("client_secret", ""))
    with emulator.lock:
        emulator.counters["token.requests"] += 1
        if not _client_is_valid(emulator, credentials):
            emulator.counters["token.invalid_client"] += 1
            return _oauth_error(401, "invalid_client")
        client_id = emulator.settings.client_id
        now = emulator.clock.now()
        grant_type = form.get("grant_type")
        try:
            if grant_type == "authorization_code":
                if not form.get("code") or not form.get("redirect_uri"):
                    raise OAuthFailure(400, "invalid_request")
                issue = emulator.tokens.exchange_code(
                    client_id=client_id,
                    code=form["code"],
                    redirect_uri=form["redirect_uri"],
                    now=now,
                )
            elif grant_type == "refresh_token":
                if not form.get("refresh_token"):
                    raise OAuthFailure(400, "invalid_request")
                issue = emulator.tokens.refresh(
                    client_id=client_id, refresh_token=form["refresh_token"], now=now
                )
            else:
                raise OAuthFailure(400, "unsupported_grant_type")
        except OAuthFailure as failure:
            emulator.counters[f"token.{failure.error}"] += 1
            return _oauth_error(failure.status, failure.error)
        body = emulator.token_response(issue)
    return JSONResponse(body, headers=NO_STORE)


async def revoke(request: Request) -> Response:
    """Revoking any token of a grant (access or refresh) kills the whole grant."""
    if (injected := await enter_endpoint(request, "revoke")) is not None:
        return injected
    emulator = emulator_of(request)
    if not _client_is_valid(emulator, _basic_credentials(request)):
        return _oauth_error(401, "invalid_client")
    raw = await request.body()
    token_value = None
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            return _oauth_error(400, "invalid_request")
        token_value = payload.get("token") if isinstance(payload, dict) else None
    else:
        token_value = (await request.form()).get("token")
    if not isinstance(token_value, str) or not token_value:
        return _oauth_error(400, "invalid_request")
    with emulator.lock:
        emulator.counters["revoke.requests"] += 1
        grant = emulator.tokens.grant_for_token(token_value)
        if grant is not None and grant.client_id == emulator.settings.client_id:
            emulator.tokens.revoke_grant(grant)
    # RFC 7009: an unknown token is not an error.
    return Response(status_code=200)


async def userinfo(request: Request) -> Response:
    if (injected := await enter_endpoint(request, "userinfo")) is not None:
        return injected
    emulator = emulator_of(request)
    scheme, _, token_value = request.headers.get("authorization", "").partition(" ")
    with emulator.lock:
        outcome = (
            emulator.tokens.authenticate(token_value, emulator.clock.now())
            if scheme.lower() == "bearer" and token_value
            else "missing bearer token"
        )
    if isinstance(outcome, str):
        return JSONResponse(
            {"error": "invalid_token"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if "openid" not in outcome.scopes:
        return JSONResponse({"error": "insufficient_scope"}, status_code=403)
    claims: dict = {"sub": outcome.user_sub}
    if "email" in outcome.scopes:
        claims.update(email=outcome.user_email, emailVerified=True)
    if "profile" in outcome.scopes:
        local = outcome.user_email.split("@")[0]
        given, _, family = local.replace("_", ".").partition(".")
        claims.update(givenName=given.title(), familyName=family.title() or "User")
    if "phone" in outcome.scopes:
        claims.update(phoneNumber="+1 5035550100", phoneNumberVerified=False)
    return JSONResponse(claims)
