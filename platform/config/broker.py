"""kombu's Redis transport, with one client object per channel instead of one per command.

For every command outside its BRPOP (a worker's two per task: storing the delivered message
among the unacknowledged, and removing it at the ack; a publisher's one per message) kombu
builds a new ``redis.Redis`` around the channel's connection pool and drops it after one use.
Building one costs more CPU than the pipelined command it sends (redis-py fills a table of
some 200 response callbacks for each): about a tenth of a worker's CPU per refresh
(bench/refresh_throughput.py). A ``redis.Redis`` is thread-safe (each command or pipeline
takes a connection from the pool and gives it back), so the channel keeps one and hands it
out; the pool, the connections and every command are kombu's as before.

``CELERY_BROKER_TRANSPORT`` names this class when the broker is Redis (config.settings).
"""

from contextlib import contextmanager

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            # First use, or the channel's pool was replaced: a client around the current one.
            shared = self._shared_client = self._create_client()
        yield shared


class Transport(redis.Transport):
    Channel = Channel
