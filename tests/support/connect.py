"""The connect flow in process (Django's test client): dynamic registration, /authorize with
consent, the code exchange with PKCE; each step runs inside a context the caller chooses, so a
test can pin its SQL statements and the connect benchmark can count them."""

import contextlib
import json
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from urllib.parse import parse_qs, urlencode, urlsplit

from django.test import Client

from tests.support.flow import REDIRECT, pkce_pair

STEPS = ("register", "authorize", "consent", "token")
PENDING = re.compile(r'name="pending" value="([^"]+)"')


def connect_flow(
    browser: Client,
    client: Client,
    resource: str,
    step: Callable[[str], AbstractContextManager] = lambda name: contextlib.nullcontext(),
) -> dict:
    """Connect a new public client to ``resource`` for the person signed in on ``browser``
    (``client`` carries no cookies); returns the token response."""
    with step("register"):
        response = client.post(
            "/register",
            json.dumps(
                {
                    "client_name": "Test client",
                    "redirect_uris": [REDIRECT],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                }
            ),
            content_type="application/json",
        )
    assert response.status_code == 201, response.content
    client_id = response.json()["client_id"]
    verifier, challenge = pkce_pair()
    authorize = "/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "state": "st4te",
            "scope": "mcp",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": resource,
        }
    )
    with step("authorize"):
        page = browser.get(authorize)
    assert page.status_code == 200, page.content
    pending = PENDING.search(page.content.decode()).group(1)
    with step("consent"):
        answer = browser.post("/authorize", {"pending": pending, "allow": "yes"})
    assert answer.status_code == 302, answer.content
    query = parse_qs(urlsplit(answer["Location"]).query)
    assert query["state"] == ["st4te"], query
    with step("token"):
        response = client.post(
            "/token",
            {
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "code_verifier": verifier,
                "redirect_uri": REDIRECT,
                "resource": resource,
                "client_id": client_id,
            },
        )
    assert response.status_code == 200, response.content
    return response.json()
