"""The public health check behind GET /api/status."""

import redis
from django.db import DatabaseError

from tetris_site import liveness
from trainer.selectors import run_counts_by_status


def status() -> dict:
    """Workers alive, runs by status, and whether Redis answers; never raises for an outage."""
    try:
        workers = liveness.alive_workers()
        redis_ok = True
    except redis.RedisError:
        workers, redis_ok = [], False
    try:
        runs = run_counts_by_status()
    except DatabaseError:
        runs = {}
    return {
        "ok": redis_ok and bool(workers),
        "redis": redis_ok,
        "workers": len(workers),
        "worker_processes": sum(w.get("concurrency", 1) for w in workers),
        "runs": runs,
    }
