"""The test identity provider (``tests.support.idp``: django-oauth-toolkit with OpenID Connect)
in its own process on loopback, and an HTTP browser that signs in through it."""

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[2]
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class TestIdp:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.url}/o"
        self._dir = tempfile.TemporaryDirectory(prefix="test-idp-")
        self.state_dir = self._dir.name
        self._log = open(Path(self._dir.name) / "idp.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.idp", str(self.port), self._dir.name],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the test IdP exited: {self.log()}")
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the test IdP did not start: {self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return (Path(self._dir.name) / "idp.log").read_text(errors="replace")[-2000:]

    def person(self, username: str, *, password: str = "idp-pass-123", **claims) -> str:
        """Create or change a person (email, email_verified, groups, misbehave); their sub."""
        body = {"username": username, "password": password, **claims}
        response = httpx.post(f"{self.url}/_test/people", json=body)
        response.raise_for_status()
        return response.json()["sub"]

    def client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        response = httpx.post(
            f"{self.url}/_test/clients",
            json={
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": redirect_uris,
            },
        )
        response.raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        self._dir.cleanup()


class SsoBrowser:
    """An HTTP client with cookies that goes through a sign-in at the test IdP."""

    def __init__(self, idp: TestIdp, username: str, password: str = "idp-pass-123"):
        self.idp = idp
        self.username = username
        self.password = password
        self.http = httpx.Client(timeout=30)

    def to_callback(self, url: str) -> str:
        """Follow ``url`` through the IdP (signing in there) up to the platform's callback URL,
        which is returned unvisited."""
        return self._follow(self.http.get(url))

    def to_callback_from_post(self, url: str, data: dict) -> str:
        return self._follow(self.http.post(url, data=data))

    def _follow(self, response: httpx.Response) -> str:
        for _ in range(10):
            if response.status_code in (301, 302, 303):
                location = urljoin(str(response.url), response.headers["location"])
                if urlsplit(location).path.startswith("/sso/") and "/callback" in location:
                    return location
                response = self.http.get(location)
            elif response.status_code == 200 and 'id="idp_username"' in response.text:
                response = self.http.post(
                    str(response.url),
                    data={
                        "csrfmiddlewaretoken": CSRF.search(response.text).group(1),
                        "username": self.username,
                        "password": self.password,
                        "next": httpx.URL(str(response.url)).params.get("next", ""),
                    },
                )
            else:
                raise AssertionError(
                    f"unexpected page {response.status_code} at {response.url}: "
                    f"{response.text[:500]}"
                )
        raise AssertionError("too many redirects")

    def sign_in(self, base: str, tenant: str, next_url: str = "/dashboard/") -> httpx.Response:
        """Start at the tenant's provider and come back; the platform's answer to the
        callback (a redirect to ``next_url`` on success, a page otherwise)."""
        callback = self.to_callback(f"{base}/sso/t/{tenant}/start?next={next_url}")
        return self.http.get(callback)
