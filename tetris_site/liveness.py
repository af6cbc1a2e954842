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
_PREFIX = "tetris:worker:"


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def beat(hostname: str, *, concurrency: int) -> None:
    """Record that this worker is alive; silently skipped while Redis is unreachable."""
    payload = json.dumps({"hostname": hostname, "concurrency": concurrency, "t": time.time()})
    with contextlib.suppress(redis.RedisError):
        _client().set(_PREFIX + hostname, payload, ex=_TTL_SECONDS)


def forget(hostname: str) -> None:
    """Remove this worker's key at a clean shutdown."""
    with contextlib.suppress(redis.RedisError):
        _client().delete(_PREFIX + hostname)


def alive_workers() -> list[dict]:
    """Workers that beat within the TTL, or raise redis.RedisError if Redis is down."""
    client = _client()
    keys = sorted(client.scan_iter(match=_PREFIX + "*", count=1000))
    values = client.mget(keys) if keys else []
    return [json.loads(value) for value in values if value is not None]
