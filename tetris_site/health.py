"""The public health check behind GET /api/status."""

import redis

from tetris_site import liveness


def status() -> dict:
    """Workers alive and whether Redis answers; never raises for a down dependency."""
    try:
        workers = liveness.alive_workers()
        redis_ok = True
    except redis.RedisError:
        workers, redis_ok = [], False
    return {
        "ok": redis_ok and bool(workers),
        "redis": redis_ok,
        "workers": len(workers),
        "worker_processes": sum(w.get("concurrency", 1) for w in workers),
    }
