"""The bridge on a real Redis: what one process publishes arrives in the order published."""

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from live import bridge
from live.names import stream_channel
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
