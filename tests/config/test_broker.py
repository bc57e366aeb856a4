"""The Redis broker's transport (config/broker.py): one client object per channel."""

import uuid

import pytest
import redis
from django.conf import settings

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis transport: set REDIS_URL")


def test_sending_receiving_and_acking_builds_no_redis_client_per_message(monkeypatch):
    """kombu built a ``redis.Redis`` for every publish, every delivery and every ack (more CPU
    than the command it sent); the platform's transport keeps one per channel. The messages
    still go through in order, and an acked message is gone."""
    from config.celery import app

    built = []
    init = redis.Redis.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting_init)
    with app.connection_for_write() as connection:
        assert connection.transport.__class__.__module__ == "config.broker"
        queue = connection.SimpleQueue(f"test-broker-{uuid.uuid4().hex}")
        try:
            for n in range(20):
                queue.put({"n": n})
            received, tags = [], []
            for _ in range(20):
                message = queue.get(timeout=5)
                received.append(message.payload["n"])
                tags.append(message.delivery_tag)
                message.ack()
            assert received == list(range(20))
            with pytest.raises(queue.Empty):
                queue.get(timeout=0.2)
            # The unacked hash is shared with every other consumer of this Redis database
            # (a worker another test started may have left its own): only ours must be gone.
            with connection.default_channel.conn_or_acquire() as client:
                unacked = connection.default_channel.unacked_key
                assert not [tag for tag in tags if client.hexists(unacked, tag)]
        finally:
            queue.queue.delete()
            queue.close()
    assert len(built) <= 2, f"{len(built)} Redis clients built for 20 messages"
