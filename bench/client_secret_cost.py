"""Benchmark: server CPU per registration and per wrong-secret /token request, with client
secrets hashed by PBKDF2 (before: Django's password hasher, DOT's default) and by the keyed
digest (after: authserver.hashers.ClientSecretHasher), side by side in one run.

Requests go through the whole Django stack in this process (the test client: middleware,
views, DOT, SQLite in a temporary VAR_DIR), so the process's CPU time per request is the
server's. "before" also restores the other half of the old cost: a public client was given a
generated secret, hashed with PBKDF2, on registration. The failed-authentication limit is off
(except in its own row), so every wrong secret is really checked.

    uv run python bench/client_secret_cost.py --requests 40 --slow-requests 6
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

CLAUDE = "https://claude.ai/api/mcp/auth_callback"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40, help="per row, keyed digest")
    parser.add_argument("--slow-requests", type=int, default=6, help="per row, PBKDF2")
    args = parser.parse_args()
    os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="client-secret-cost-")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    logging.getLogger("django.request").setLevel(logging.ERROR)  # a warning per 401 and 429
    from django.conf import settings
    from django.core.management import call_command
    from django.db.models.signals import pre_save
    from django.test import Client
    from django.test.utils import override_settings
    from oauth2_provider.models import Application

    from authserver.registration import public_client_holds_no_secret

    call_command("migrate", verbosity=0)
    http = Client()
    base = {
        "ALLOWED_HOSTS": ["*"],
        "DCR_RATE_LIMIT": 10**9,
        "CLIENT_AUTH_FAILURE_LIMIT": 10**9,
    }

    def hasher_settings(hasher: str) -> dict:
        return {
            **base,
            "OAUTH2_PROVIDER": {**settings.OAUTH2_PROVIDER, "CLIENT_SECRET_HASHER": hasher},
        }

    def register(method: str):
        body = {
            "client_name": "Claude",
            "redirect_uris": [CLAUDE],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
        }
        response = http.post("/register", json.dumps(body), content_type="application/json")
        assert response.status_code == 201, response.content
        return response.json()

    def wrong_secret(client_id: str, expected: int):
        def request():
            response = http.post(
                "/token",
                {
                    "grant_type": "refresh_token",
                    "refresh_token": "not-a-token",
                    "client_id": client_id,
                    "client_secret": "a-wrong-guess",
                },
            )
            assert response.status_code == expected, response.content

        return request

    def cpu_ms(request, n: int) -> float:
        request()  # warm: first-use imports and caches are not what is measured
        started = time.process_time()
        for _ in range(n):
            request()
        return (time.process_time() - started) * 1000 / n

    rows = []
    runs = (
        ("before", "pbkdf2_sha256", args.slow_requests),
        ("after", "client_hmac_sha256", args.requests),
    )
    for when, hasher, n in runs:
        with override_settings(**hasher_settings(hasher)):
            if when == "before":  # DOT's default: a public client got a hashed secret too
                pre_save.disconnect(public_client_holds_no_secret, sender=Application)
            rows.append(("registration, public (none)", when, cpu_ms(lambda: register("none"), n)))
            pre_save.connect(public_client_holds_no_secret, sender=Application)
            rows.append(
                (
                    "registration, confidential (client_secret_post)",
                    when,
                    cpu_ms(lambda: register("client_secret_post"), n),
                )
            )
            target = register("client_secret_post")["client_id"]
            rows.append(("/token, wrong client secret", when, cpu_ms(wrong_secret(target, 401), n)))
    with override_settings(
        **{**hasher_settings("client_hmac_sha256"), "CLIENT_AUTH_FAILURE_LIMIT": 1}
    ):
        target = register("client_secret_post")["client_id"]
        wrong_secret(target, 401)()  # the one failure the limit allows
        rows.append(
            (
                "/token, wrong client secret, past the limit (429)",
                "after",
                cpu_ms(wrong_secret(target, 429), args.requests),
            )
        )

    before = {name: ms for name, when, ms in rows if when == "before"}
    load = os.getloadavg()[0]
    print(
        f"requests per row: {args.slow_requests} (PBKDF2), {args.requests} (keyed digest); "
        f"load average {load:.2f}"
    )
    print("| request | before: PBKDF2, CPU ms | after: keyed digest, CPU ms | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, when, ms in rows:
        if when == "after":
            old = before.get(name)
            if old is None:
                old = before["/token, wrong client secret"]
            print(f"| {name} | {old:.1f} | {ms:.1f} | {old / ms:.0f}x |")


if __name__ == "__main__":
    main()
