"""A scripted browser for npm clients that open the authorization URL themselves.

``python -m tests.support.scripted_browser URL`` signs in as ``SCRIPTED_BROWSER_USER`` (password
``SCRIPTED_BROWSER_PASSWORD``), answers the consent page (and the upstream provider's, for
origins listed in ``SCRIPTED_BROWSER_ALSO_VISITS``), then opens the client's redirect URL, as a
person's browser would. It is what MCP Inspector runs as ``BROWSER``. It never skips consent:
it submits the same forms a person does.
"""

import os
import sys

import httpx

from tests.support.oauth import Browser


def sign_in_and_return(url: str, *, username: str, password: str, also_visits=()) -> str:
    """Complete the authorization at ``url`` and deliver the redirect to the client."""
    location = Browser(username, password, also_visits=tuple(also_visits)).authorize_location(url)
    httpx.get(location, timeout=30)
    return location


def main() -> None:
    url = sys.argv[-1]
    also = [o for o in os.environ.get("SCRIPTED_BROWSER_ALSO_VISITS", "").split(",") if o]
    sign_in_and_return(
        url,
        username=os.environ["SCRIPTED_BROWSER_USER"],
        password=os.environ["SCRIPTED_BROWSER_PASSWORD"],
        also_visits=also,
    )


if __name__ == "__main__":
    main()
