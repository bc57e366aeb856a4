"""Drive the browser part of an OAuth flow over HTTP: sign in, consent, read the redirect."""

import html
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PENDING = re.compile(r'name="pending" value="([^"]+)"')
INPUT = re.compile(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"')
OPTION = re.compile(r'<option[^>]*value="([^"]*)"')
FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


class Browser:
    """An HTTP client with cookies that signs in and answers the consent page like a person."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        allow: bool = True,
        connector_id=None,
        also_visits: tuple[str, ...] = (),
        allow_provider: bool = True,
        upstream_login: tuple[str, str] | None = None,
        upstream_key: str | None = None,
    ):
        """``also_visits``: origins besides the platform the browser follows redirects to (the
        upstream provider's); a redirect anywhere else is the client's callback.
        ``upstream_login``: (username, password) for an upstream's own sign-in page."""
        self.upstream_login = upstream_login
        self.upstream_key = upstream_key
        self.also_visits = also_visits
        self.allow_provider = allow_provider
        self.username = username
        self.password = password
        self.allow = allow
        self.connector_id = connector_id
        self.http = httpx.Client(timeout=30)
        self.pages: list[httpx.Response] = []

    def sign_in(self, base_url: str) -> None:
        page = self.http.get(f"{base_url}/accounts/login/")
        response = self.http.post(
            f"{base_url}/accounts/login/",
            data={
                "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
                "username": self.username,
                "password": self.password,
            },
        )
        assert response.status_code == 302, "sign-in failed"

    def submit(self, url: str, data: dict | None = None) -> httpx.Response:
        """GET a page with a form and POST it back (with its CSRF token), following redirects
        through the platform and the origins in ``also_visits``."""
        page = self.http.get(url)
        self.pages.append(page)
        form = {"csrfmiddlewaretoken": CSRF.search(page.text).group(1), **(data or {})}
        return self.http.post(url, data=form, follow_redirects=True)

    def authorize(self, url: str) -> dict:
        """Follow ``url`` (an /authorize URL) to the client's redirect; return its query."""
        return _query(self.authorize_location(url))

    def authorize_location(self, url: str) -> str:
        """Follow ``url`` (an /authorize URL) to the client's redirect; return that URL."""
        origins = {_origin(url), *self.also_visits}
        response = self.http.get(url)
        for _ in range(12):
            self.pages.append(response)
            if response.status_code in (301, 302, 303, 307):
                location = urljoin(str(response.url), response.headers["location"])
                if _origin(location) not in origins:
                    return location
                response = self.http.get(location)
            elif (
                response.status_code == 200
                and 'name="password"' in response.text
                and self.upstream_login
                and _origin(str(response.url)) != _origin(url)
            ):
                # An upstream MCP server's own sign-in; an identity provider's sign-in page (a
                # Django one, like ours) takes the person's own credentials in the branch below.
                response = self._sign_in_upstream(response)
            elif response.status_code == 200 and 'name="password"' in response.text:
                response = self.http.post(
                    str(response.url),
                    data={
                        "csrfmiddlewaretoken": CSRF.search(response.text).group(1),
                        "username": self.username,
                        "password": self.password,
                        "next": parse_qs(urlsplit(str(response.url)).query).get("next", [""])[0],
                    },
                )
            elif response.status_code == 200 and 'name="pending"' in response.text:
                form = {
                    "csrfmiddlewaretoken": CSRF.search(response.text).group(1),
                    "pending": PENDING.search(response.text).group(1),
                    "allow": "yes" if self.allow else "no",
                }
                if self.connector_id is not None:
                    form["connector"] = str(self.connector_id)
                response = self.http.post(
                    urljoin(str(response.url), "/authorize"),
                    data=form,
                    headers={"Referer": str(response.url)},
                )
            elif response.status_code == 200 and 'name="credential"' in response.text:
                assert self.upstream_key, f"no upstream_key for the page at {response.url}"
                response = self.http.post(
                    str(response.url).split("?")[0],
                    data={
                        "csrfmiddlewaretoken": CSRF.search(response.text).group(1),
                        "state": parse_qs(urlsplit(str(response.url)).query)["state"][0],
                        "credential": self.upstream_key,
                    },
                    headers={"Referer": str(response.url)},
                )
            elif response.status_code == 200 and 'name="decision"' in response.text:
                response = self._answer_provider_consent(response)
            else:
                raise AssertionError(
                    f"unexpected page {response.status_code} at {response.url}: "
                    f"{response.text[:500]}"
                )
        raise AssertionError("too many redirects")

    def _sign_in_upstream(self, page: httpx.Response) -> httpx.Response:
        """An upstream MCP server's own sign-in form (not the platform's)."""
        username, password = self.upstream_login
        action = html.unescape(FORM_ACTION.search(page.text).group(1))
        return self.http.post(
            urljoin(str(page.url), action), data={"username": username, "password": password}
        )

    def _answer_provider_consent(self, page: httpx.Response) -> httpx.Response:
        """The upstream provider's (the Intuit emulator's) consent form: Connect or Cancel."""
        form = dict(INPUT.findall(page.text))
        option = OPTION.search(page.text)
        if option:
            form.setdefault("realm_id", option.group(1))
        form["decision"] = "approve" if self.allow_provider else "deny"
        action = FORM_ACTION.search(page.text).group(1)
        return self.http.post(urljoin(str(page.url), action), data=form)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _query(location: str) -> dict:
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["_redirect"] = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return query
