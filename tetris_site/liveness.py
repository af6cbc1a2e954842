"""Worker liveness in Redis: each worker refreshes a key with a short TTL.

`celery inspect ping` would answer the same question, but it broadcasts and waits a
timeout on every call; a health check should cost one Redis round trip.
"""

import contextlib
import json
import time

import redis
from django.conf import settings

BEAT_SECONDS = 5.0
_TTL_SECONDS = 15
# Two keys, whatever the number of workers: a health check reads them, never scans the
# keyspace (a SCAN walks every key Redis holds, plays and frames included).
# When each worker lapses (sorted set, scores on the Redis server's clock, so hosts whose
# clocks disagree still agree), and what each said of itself (hash).
DEADLINES = "tetris:workers:deadlines"
PAYLOADS = "tetris:workers"

_BEAT = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
"""
_ALIVE = """
local now = redis.call('TIME')
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now[1])
for _, name in ipairs(lapsed) do
  redis.call('ZREM', KEYS[1], name)
  redis.call('HDEL', KEYS[2], name)
end
local names = redis.call('ZRANGE', KEYS[1], 0, -1)
if #names == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(names))
"""


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def beat(hostname: str, *, concurrency: int) -> None:
    """Record that this worker is alive; silently skipped while Redis is unreachable."""
    payload = json.dumps({"hostname": hostname, "concurrency": concurrency, "t": time.time()})
    with contextlib.suppress(redis.RedisError):
        _client().eval(_BEAT, 2, DEADLINES, PAYLOADS, hostname, payload, _TTL_SECONDS)


def forget(hostname: str) -> None:
    """Remove this worker at a clean shutdown."""
    with contextlib.suppress(redis.RedisError), _client().pipeline() as pipe:
        pipe.zrem(DEADLINES, hostname)
        pipe.hdel(PAYLOADS, hostname)
        pipe.execute()


def alive_workers(client: redis.Redis | None = None) -> list[dict]:
    """Workers that beat within the TTL (one round trip), or raise redis.RedisError if
    Redis is down."""
    values = (client or _client()).eval(_ALIVE, 2, DEADLINES, PAYLOADS)
    return [json.loads(value) for value in values if value is not None]


def is_alive(client: redis.Redis, hostname: str) -> bool:
    """Whether `hostname` beat within the TTL (for a launcher waiting on its worker)."""
    return any(worker["hostname"] == hostname for worker in alive_workers(client))
