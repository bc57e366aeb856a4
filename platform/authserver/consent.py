"""Remembered consent: bound to the client as it described itself and to where its code goes."""

import hashlib
import json
from urllib.parse import urlsplit, urlunsplit

from oauth2_provider.models import Application

from authserver.models import Consent
from authserver.registration import LOOPBACK_HOSTS


def client_digest(application: Application) -> str:
    """SHA-256 of what identifies a client to the user and where its codes may go.

    DOT keeps no logo or client URIs (nothing shows them), so name, redirect URIs, grant type and
    client type are the whole description; a re-fetched CIMD document or an operator's edit that
    changes any of them changes the digest.
    """
    described = {
        "client_id": application.client_id,
        "name": application.name,
        "redirect_uris": application.redirect_uris.split(),
        "grant_type": application.authorization_grant_type,
        "client_type": application.client_type,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def consent_redirect(uri: str) -> str:
    """The redirect URI a consent is kept for: exact, except a loopback port (RFC 8252 7.3 lets
    native clients listen on any port, so it is no part of where the code goes)."""
    parts = urlsplit(uri)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        return uri
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def redirect_hosts(application: Application) -> list[str]:
    """Every place the client's codes may go, as the consent page names them."""
    hosts = []
    for uri in application.redirect_uris.split():
        parts = urlsplit(uri)
        web = parts.scheme in ("http", "https")
        host = parts.hostname if web else f"{parts.scheme}://{parts.netloc}"
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def cimd_host(application: Application) -> str | None:
    """The host that publishes a CIMD client's document: who the client really is."""
    if application.registration_source != Application.RegistrationSource.CIMD:
        return None
    return urlsplit(application.client_id).hostname


def consent_remembered(
    *, user, application: Application, connector, redirect_uri: str, scopes
) -> bool:
    """True when ``user`` approved this client, as it is now, for this connector and redirect,
    with at least ``scopes`` (a step-up to a wider scope asks again)."""
    approved = Consent.objects.filter(
        user=user,
        application=application,
        connector=connector,
        redirect_uri=consent_redirect(redirect_uri),
        client_digest=client_digest(application),
    ).values_list("scope", flat=True)
    return any(set(scopes) <= set(scope.split()) for scope in approved)


def consent_record(
    *, user, application: Application, connector, redirect_uri: str, digest: str, scope: str
) -> Consent:
    """Remember an approval of the client as the consent page showed it (``digest``): one
    upsert on the consent's unique key, a new approval replacing an older one."""
    consent = Consent(
        user=user,
        application=application,
        connector=connector,
        redirect_uri=consent_redirect(redirect_uri),
        client_digest=digest,
        scope=scope,
    )
    Consent.objects.bulk_create(
        [consent],
        update_conflicts=True,
        unique_fields=["user", "application", "connector", "redirect_uri"],
        update_fields=["client_digest", "scope"],
    )
    return consent
