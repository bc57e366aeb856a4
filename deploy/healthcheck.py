"""The container health check: GET /healthz from the web server, as the proxy would ask it.

Run by the image's HEALTHCHECK (``python deploy/healthcheck.py``); exits 0 when healthy, 1
otherwise. The Host header is PUBLIC_URL's: Django answers 400 to a host it does not serve, and
inside the container the server is only known as 127.0.0.1.

    python deploy/healthcheck.py [URL]     # default http://127.0.0.1:8000/healthz
"""

import json
import sys
import urllib.request
from urllib.parse import urlsplit

from config.env import env

DEFAULT_URL = "http://127.0.0.1:8000/healthz"


def healthy(url: str = DEFAULT_URL) -> bool:
    """True when ``url`` answers 200 with ``{"status": "ok"}`` for PUBLIC_URL's host."""
    public = urlsplit(env("PUBLIC_URL", "") or "")
    headers = {"Host": public.netloc} if public.netloc else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=4) as r:
            return r.status == 200 and json.load(r).get("status") == "ok"
    except (OSError, ValueError) as exc:  # refused, timeout, HTTP error, not JSON
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return False


if __name__ == "__main__":
    sys.exit(0 if healthy(*sys.argv[1:2]) else 1)
