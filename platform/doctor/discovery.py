"""Discovery after the 401: RFC 9728 resource metadata, RFC 8414 / OIDC authorization-server
metadata by every generation's rules, the fields clients require, the issuer, and whether the
advertised URLs point at the origin clients use."""

from urllib.parse import urlsplit

from doctor.findings import Findings
from doctor.steps import Status, Verdict, failed, passed, skipped, warned
from doctor.wire import (
    AS_WELL_KNOWN,
    PRM_WELL_KNOWN,
    Document,
    authorization_server_metadata_urls,
    is_http_url,
    is_loopback,
    looks_internal,
    origin_of,
    path_inserted,
    send,
)

PUBLIC_URL_FIX = (
    "PUBLIC_URL does not match the address clients use: set it to {origin} (the origin users "
    "paste; on this platform the PUBLIC_URL variable, elsewhere the server's base/public URL "
    "setting). Behind a TLS proxy, also forward X-Forwarded-Proto and X-Forwarded-Host."
)


# --- RFC 9728 protected-resource metadata --------------------------------------------------------


def check_resource_metadata_header(findings: Findings) -> Verdict:
    """The document at the URL the 401 names (2025-06-18 on)."""
    url = findings.resource_metadata_url
    if not url:
        return skipped("the 401 named no resource_metadata URL (see unauthenticated_post)")
    document = findings.document(url)
    verdict = _resource_metadata_verdict(findings, document)
    _adopt_resource_metadata(findings, document)
    return verdict


def check_resource_metadata_path(findings: Findings) -> Verdict:
    """The path-inserted URL: where 2025-11-25 clients look when the 401 names none."""
    url = path_inserted(findings.url, PRM_WELL_KNOWN)
    if url == findings.resource_metadata_url:
        # The same document: its verdict is resource_metadata_header's, counted once.
        if _resource_metadata_verdict(findings, findings.document(url)).status == Status.PASS:
            return passed(f"{url} is the URL the 401 names (checked above)")
        return skipped(f"{url} is the URL the 401 names (see resource_metadata_header)")
    document = findings.document(url)
    verdict = _resource_metadata_verdict(findings, document)
    had_one = findings.resource_metadata is not None
    _adopt_resource_metadata(findings, document)
    if verdict.status == Status.FAIL and had_one and document.kind in ("missing", "denied"):
        return warned(
            f"{url}: {document.summary()}; clients that ignore the header's URL find nothing",
            f"Also serve the resource metadata at {url}.",
        )
    return verdict


def _adopt_resource_metadata(findings: Findings, document: Document) -> None:
    """Later steps follow the first JSON document, as a lenient client would."""
    if findings.resource_metadata is None and document.ok:
        findings.resource_metadata = document.data
        findings.resource_metadata_url = document.url


def _resource_metadata_verdict(findings: Findings, document: Document) -> Verdict:
    url = document.url
    if not document.ok:
        fixes = {
            "html": "A catch-all route (SPA fallback, CMS, default page) answers this path: serve "
            "the RFC 9728 JSON here, or 404.",
            "denied": "Discovery documents must be public: serve them without authentication.",
            "missing": f"Serve RFC 9728 metadata at {url}: "
            f'{{"resource": "{findings.url}", "authorization_servers": ["<issuer>"]}}.',
        }
        return failed(
            f"{url}: {document.summary()}",
            fixes.get(document.kind, "Serve the RFC 9728 metadata there as a JSON object."),
        )
    data = document.data
    resource = data.get("resource")
    problems, fixes = [], []
    if resource != findings.url:
        problems.append(_resource_mismatch(resource, findings.url))
        if isinstance(resource, str) and origin_of(resource) != findings.origin:
            fixes.append(PUBLIC_URL_FIX.format(origin=findings.origin))
        else:
            fixes.append(
                f'Make "resource" exactly the URL users paste ({findings.url}), or give users '
                "the URL the metadata names."
            )
    servers = data.get("authorization_servers")
    if not (isinstance(servers, list) and servers and all(is_http_url(s) for s in servers)):
        problems.append(f"authorization_servers is missing or not a list of URLs: {servers!r}")
        fixes.append('List the issuer URL in "authorization_servers".')
    if problems:
        return failed(f"{url}: " + "; ".join(problems), " ".join(fixes))
    notes = [f"{url}: resource {resource}, authorization_servers {servers}"]
    scopes = data.get("scopes_supported")
    if isinstance(scopes, list) and "offline_access" in scopes:
        return warned(
            notes[0] + "; scopes_supported lists offline_access",
            "Drop offline_access from scopes_supported (MCP 2026-07-28): clients ask for every "
            "listed scope and authorization servers then refuse.",
        )
    if document.redirects:
        return warned(
            f"{notes[0]}; reached through a redirect to {document.redirects[-1]}",
            "Serve the document at the URL itself: not every client follows redirects here.",
        )
    return passed(notes[0])


def _resource_mismatch(resource: object, url: str) -> str:
    if not isinstance(resource, str):
        return f"resource is missing or not a string ({resource!r})"
    if resource.rstrip("/") == url.rstrip("/"):
        return (
            f"resource {resource} differs from the URL {url} by a trailing slash; clients "
            "compare exactly"
        )
    if origin_of(resource) != origin_of(url):
        return f"resource {resource} names another origin than the URL {url}"
    return f"resource {resource} is not the URL {url}"


# --- RFC 8414 / OIDC authorization-server metadata -----------------------------------------------


def check_as_metadata(findings: Findings) -> Verdict:
    """2025-06-18 on: the listed issuer's metadata, every well-known form a client tries."""
    issuer = findings.authorization_server
    if not issuer:
        return skipped(
            "no usable resource metadata, so no issuer: clients fall back to the 2025-03-26 "
            "rules (next step)"
        )
    documents = [findings.document(url) for url in authorization_server_metadata_urls(issuer)]
    tried = "; ".join(f"{d.url}: {d.summary()}" for d in documents)
    found = next((d for d in documents if d.ok), None)
    html_pages = [d.url for d in documents if d.kind == "html"]
    if found is not None:
        findings.metadata, findings.metadata_url = found.data, found.url
        findings.expected_issuer = issuer
    if html_pages:
        return failed(
            f"HTML with status 200 where JSON (or 404) was expected. Tried {tried}",
            f"Serve the metadata, or a 404, at {', '.join(html_pages)}: a catch-all route (SPA "
            "fallback, CMS, default page) answers there, and clients that try it stop with a "
            "parse error.",
        )
    if found is None:
        return failed(
            f"no authorization-server metadata for issuer {issuer}. Tried {tried}",
            f"Serve RFC 8414 metadata at {documents[0].url} (or OIDC discovery at "
            f"{documents[1].url}), public and as JSON.",
        )
    others = [d for d in documents if d.ok and d is not found and _disagree(d.data, found.data)]
    if others:
        return warned(
            f"{found.url} and {others[0].url} disagree on the issuer or endpoints",
            "Serve one metadata document under every well-known name.",
        )
    if found.redirects:
        return warned(
            f"{found.url} reached through a redirect to {found.redirects[-1]}. Tried {tried}",
            "Serve the metadata at the well-known URL itself.",
        )
    return passed(f"metadata at {found.url}. Tried {tried}")


def _disagree(first: dict, second: dict) -> bool:
    keys = ("issuer", "authorization_endpoint", "token_endpoint", "registration_endpoint")
    return any(first.get(key) != second.get(key) for key in keys)


def check_as_metadata_2025_03_26(findings: Findings) -> Verdict:
    """2025-03-26: metadata at the MCP URL's origin root, else /authorize, /token, /register."""
    root = f"{findings.origin}{AS_WELL_KNOWN}"
    document = findings.document(root)
    if document.ok:
        if findings.metadata is None:
            findings.metadata, findings.metadata_url = document.data, root
            findings.expected_issuer = findings.origin
        missing = [
            f"{name}_endpoint"
            for name in ("authorization", "token")
            if not document.data.get(f"{name}_endpoint")
        ]
        if missing:
            return failed(
                f"{root} lacks {', '.join(missing)}",
                "Publish the authorization and token endpoints in the metadata.",
            )
        return passed(f"metadata at the origin root {root}")
    if document.kind in ("html", "denied", "error", "invalid"):
        return failed(
            f"{root}: {document.summary()}: 2025-03-26 clients stop here",
            f"Serve the metadata (or a 404) at {root}: public, as JSON.",
        )
    probes = {
        name: send(findings.http, "GET", f"{findings.origin}/{name}").response
        for name in ("authorize", "token", "register")
    }
    absent = [
        f"/{name}"
        for name, response in probes.items()
        if response is None or response.status_code == 404
    ]
    if not absent:
        findings.fallback_endpoints = {
            "authorization": f"{findings.origin}/authorize",
            "token": f"{findings.origin}/token",
            "registration": f"{findings.origin}/register",
        }
        if findings.metadata is None:
            return failed(
                f"{root}: {document.summary()}; only the default endpoints /authorize, /token, "
                "/register exist at the root: clients of 2025-11-25 on require metadata",
                f"Serve RFC 8414 metadata at {root} with code_challenge_methods_supported.",
            )
        return passed(f"{root}: {document.summary()}; /authorize, /token, /register at the root")
    detail = (
        f"{root}: {document.summary()}, and {', '.join(absent)} missing at {findings.origin}: "
        "2025-03-26 clients cannot find the authorization server"
    )
    fix = f"Serve a copy of the authorization server's metadata at {root}."
    if findings.metadata is not None:
        return warned(detail, fix)
    return failed(detail, fix)


def check_as_fields(findings: Findings) -> Verdict:
    """What clients require of the metadata: PKCE S256, a way to get a client id, endpoints."""
    metadata = findings.metadata
    if metadata is None:
        return skipped("no authorization-server metadata (see the discovery steps)")
    problems, fixes = [], []
    missing = [
        f"{name}_endpoint"
        for name in ("authorization", "token")
        if not is_http_url(metadata.get(f"{name}_endpoint"))
    ]
    if missing:
        problems.append(f"{', '.join(missing)} missing")
        fixes.append("Publish authorization_endpoint and token_endpoint.")
    methods = metadata.get("code_challenge_methods_supported")
    if not (isinstance(methods, list) and "S256" in methods):
        problems.append(
            f"code_challenge_methods_supported is {methods!r}, without S256: 2025-11-25 clients "
            "refuse the server"
        )
        fixes.append('Add "code_challenge_methods_supported": ["S256"].')
    dcr = metadata.get("registration_endpoint")
    cimd = metadata.get("client_id_metadata_document_supported") is True
    if not dcr and not cimd:
        problems.append(
            "neither registration_endpoint nor client_id_metadata_document_supported: clients "
            "cannot get a client id"
        )
        fixes.append("Offer Dynamic Client Registration (registration_endpoint), CIMD, or both.")
    if problems:
        return failed(f"{findings.metadata_url}: " + "; ".join(problems), " ".join(fixes))
    auth_methods = metadata.get("token_endpoint_auth_methods_supported")
    ways = " and ".join(w for w, on in (("DCR", bool(dcr)), ("CIMD", cimd)) if on)
    detail = f"PKCE S256; client ids through {ways}; token endpoint auth methods {auth_methods}"
    if not (isinstance(auth_methods, list) and "none" in auth_methods):
        return warned(
            f'{detail}: "none" is not among them, so Claude will not use CIMD and public '
            "clients (Cursor, VS Code, Claude Code) may be refused",
            'Add "none" to token_endpoint_auth_methods_supported and accept public clients.',
        )
    return passed(detail)


def check_issuer(findings: Findings) -> Verdict:
    """``issuer`` must be exactly the authorization server URL the client built."""
    if findings.metadata is None:
        return skipped("no authorization-server metadata (see the discovery steps)")
    issuer = findings.metadata.get("issuer")
    expected = findings.expected_issuer
    built = (
        "the URL listed in authorization_servers"
        if expected == findings.authorization_server
        else "the MCP URL's origin, by the 2025-03-26 rules"
    )
    if issuer == expected:
        return passed(f"issuer {issuer} is exactly the URL the client built ({built})")
    if not isinstance(issuer, str) or not issuer:
        return failed(
            f"{findings.metadata_url} has no issuer",
            f'Add "issuer": "{expected}" to the metadata.',
        )
    if issuer.rstrip("/") == expected.rstrip("/"):
        detail = (
            f"issuer {issuer} differs from {expected} ({built}) by a trailing slash; clients "
            "(RFC 8414 §3.3, MCP 2026-07-28) require the exact string"
        )
    else:
        detail = f"issuer {issuer} is not {expected} ({built})"
    return failed(
        detail,
        f'Make "issuer" exactly {expected}, or list exactly {issuer} in authorization_servers: '
        "the two strings must be identical, trailing slash included.",
    )


# --- the origins the server advertises -----------------------------------------------------------


def check_public_url(findings: Findings) -> Verdict:
    """Every URL the server hands out must point at the origin clients actually reach."""
    own: list[tuple[str, str]] = []  # must be the MCP URL's origin
    issued: list[tuple[str, str]] = []  # may be another, public, origin
    if findings.challenge and findings.challenge.get("resource_metadata"):
        own.append(("resource_metadata in the 401", findings.challenge["resource_metadata"]))
    if findings.resource_metadata:
        own.append(("resource", findings.resource_metadata.get("resource")))
        servers = findings.resource_metadata.get("authorization_servers")
        if isinstance(servers, list):
            issued.extend(("authorization_servers", server) for server in servers)
    if findings.metadata:
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "registration_endpoint"):
            if findings.metadata.get(key):
                issued.append((key, findings.metadata[key]))
    checked = [(k, v) for k, v in own + issued if is_http_url(v)]
    if not checked:
        return skipped("the server advertised no URLs (see the discovery steps)")
    wrong = [(k, v) for k, v in own if is_http_url(v) and origin_of(v) != findings.origin]
    wrong += [(k, v) for k, v in issued if is_http_url(v) and _misplaced(v, findings.url)]
    if wrong:
        by_origin: dict[str, list[str]] = {}
        for key, value in wrong:
            by_origin.setdefault(origin_of(value), []).append(key)
        listed = "; ".join(f"{o} (in {', '.join(keys)})" for o, keys in by_origin.items())
        return failed(
            f"reached at {findings.origin}, the server advertises {listed}",
            PUBLIC_URL_FIX.format(origin=findings.origin),
        )
    elsewhere = sorted(
        {origin_of(v) for _, v in issued if is_http_url(v) and origin_of(v) != findings.origin}
    )
    if elsewhere:
        return passed(
            f"resource URLs at {findings.origin}; authorization server at {', '.join(elsewhere)}"
        )
    return passed(f"every advertised URL is at {findings.origin}")


def _misplaced(advertised: str, used: str) -> bool:
    """True when an authorization-server URL on another origin looks like this same server under
    a wrong name rather than a separate service."""
    adv, use = urlsplit(advertised), urlsplit(used)
    if adv.hostname == use.hostname:
        # The same host under another scheme (a TLS proxy), or the app's own port leaking out.
        return adv.scheme != use.scheme or (_port(adv) != _port(use) and use.port is None)
    if looks_internal(adv.hostname):
        # localhost for 127.0.0.1 is the same server; another loopback port may be a local IdP.
        return not is_loopback(use.hostname) or _port(adv) == _port(use)
    return False


def _port(parts) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)
