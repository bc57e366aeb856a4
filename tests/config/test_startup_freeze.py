"""What a web process built at start-up is frozen out of the cyclic collector (config.asgi), so
a full collection during requests does not scan it all again (the gateway's p99)."""

import gc

import anyio
import pytest

from config.asgi import PlatformApplication

pytestmark = pytest.mark.django_db(transaction=True)


def test_start_up_freezes_what_it_built():
    sent = []

    async def lifespan():
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message)

        await PlatformApplication()._lifespan(receive, send)

    gc.unfreeze()
    try:
        anyio.run(lifespan)
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert gc.get_freeze_count() > 10_000  # the modules, settings and servers of start-up
    finally:
        gc.unfreeze()
