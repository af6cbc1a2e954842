"""The bridge on a real Redis: what one process publishes arrives in the order published."""

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from live import bridge
from live.names import overlay_key, stream_channel
from live.protocol import Envelope, Frame

pytestmark = pytest.mark.redis


def test_a_burst_of_boards_reaches_a_subscriber_in_the_order_published() -> None:
    group = "run.order-test"

    async def scenario() -> list[int]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(stream_channel(group))
        futures = [
            bridge.publish(group, Frame(seq, float(seq), 1, "", "I", 0, 0, seq))
            for seq in range(1, 61)
        ]
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures if f is not None))
        seqs, deadline = [], time.monotonic() + 10
        while len(seqs) < len([f for f in futures if f is not None]):
            assert time.monotonic() < deadline, f"only {len(seqs)} messages came"
            # None also for the subscription's own confirmation, which is skipped.
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                seqs.append(Envelope.from_bytes(message["data"]).published)
        await pubsub.aclose()
        await client.aclose()
        return seqs

    seqs = asyncio.run(scenario())
    assert seqs == sorted(seqs), seqs


def test_a_worker_learns_within_seconds_that_a_viewer_turned_the_overlay_on() -> None:
    import redis

    group = "run.overlay-test"
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(overlay_key(group))
    assert bridge.options_wanted(group) is False  # asks in the background, answers at once

    def answer_within(seconds: float, expected: bool) -> float:
        started = time.monotonic()
        while bridge.options_wanted(group) is not expected:
            assert time.monotonic() - started < seconds, f"still {not expected}"
            time.sleep(0.02)
        return time.monotonic() - started

    client.set(overlay_key(group), b"1", ex=30)
    assert answer_within(3.0, True) <= 3.0
    client.delete(overlay_key(group))
    assert answer_within(3.0, False) <= 3.0
    # Never a wait on the caller: a hundred questions in a row take no round trip each.
    started = time.perf_counter()
    for _ in range(100):
        bridge.options_wanted(group)
    assert time.perf_counter() - started < 0.05
