"""Worker liveness on the real Redis: who is alive, who lapsed, and a health check that
reads two keys however big the keyspace is."""

import time

import pytest
import redis
from django.conf import settings
from django.test import Client

from tetris_site import liveness

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def r() -> redis.Redis:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(liveness.DEADLINES, liveness.PAYLOADS)
    return client


def scans(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def test_workers_are_alive_while_they_beat_and_lapse_after(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    liveness.beat("a@host", concurrency=2)
    liveness.beat("b@host", concurrency=1)
    alive = liveness.alive_workers()
    assert sorted((w["hostname"], w["concurrency"]) for w in alive) == [
        ("a@host", 2),
        ("b@host", 1),
    ]
    liveness.forget("b@host")
    assert [w["hostname"] for w in liveness.alive_workers()] == ["a@host"]
    monkeypatch.setattr(liveness, "_TTL_SECONDS", 1)
    liveness.beat("a@host", concurrency=2)
    time.sleep(2.1)
    assert liveness.alive_workers() == [] and not r.hlen(liveness.PAYLOADS)


def test_the_public_health_check_never_scans_the_keyspace(r: redis.Redis) -> None:
    liveness.beat("w@host", concurrency=3)
    with r.pipeline() as pipe:
        for i in range(5000):
            pipe.set(f"tetris:play:unrelated{i}:spec", "x", ex=60)
        pipe.execute()
    before = scans(r)
    for _ in range(20):
        status = Client().get("/api/status").json()
    assert status["workers"] >= 1 and status["worker_processes"] >= 3
    assert scans(r) == before
