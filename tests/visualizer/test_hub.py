"""The stream hub on a real Redis: one subscription feeds every viewer of a group in this
process, leaving stops the feed, and after a Redis restart the same viewers are fed again
without joining again."""

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from live.names import stream_channel
from live.protocol import Envelope
from tetris_site import stack
from visualizer.hub import Hub

pytestmark = pytest.mark.stack


class Recorder:
    """A viewer that keeps what it is handed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def relay(self, message: Envelope) -> None:
        self.texts.append(message.text)


def envelope(text: str) -> bytes:
    """A message as the bridge publishes it."""
    return Envelope("metrics", time.time(), text).to_bytes()


async def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def publish_until_heard(client: aioredis.Redis, group: str, viewer: Recorder) -> None:
    """Publish probes until the viewer hears one (the subscription may still be on its way)."""
    deadline = time.monotonic() + 10
    while not any(t.startswith("probe") for t in viewer.texts):
        assert time.monotonic() < deadline, "the hub never delivered"
        await client.publish(stream_channel(group), envelope("probe"))
        await asyncio.sleep(0.05)
    viewer.texts.clear()


@pytest.fixture
def private_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> stack.Service:
    service = stack.start_redis(tmp_path, log_path=tmp_path / "redis.log")
    monkeypatch.setattr(settings, "REDIS_URL", service.url)
    yield service
    service.stop(grace=5)


def test_one_read_feeds_every_viewer_of_the_group_in_order_and_leaving_stops_it(
    private_redis: stack.Service,
) -> None:
    async def scenario() -> None:
        hub = Hub()
        client = aioredis.Redis.from_url(private_redis.url)
        ann, bob, other = Recorder(), Recorder(), Recorder()
        await hub.join("run.1", ann)
        await hub.join("run.1", bob)
        await hub.join("run.2", other)
        await publish_until_heard(client, "run.1", ann)
        await publish_until_heard(client, "run.2", other)
        bob.texts.clear()
        relayed = hub.relayed
        for i in range(50):
            await client.publish(stream_channel("run.1"), envelope(f"m{i}"))
        await wait_until(lambda: len(bob.texts) == 50)
        assert ann.texts == bob.texts == [f"m{i}" for i in range(50)]
        assert other.texts == []
        assert hub.relayed - relayed == 50, "each message is read once, not once per viewer"

        await hub.leave("run.1", ann)
        # What is not an envelope (not from our bridge, or not UTF-8) is skipped.
        await client.publish(stream_channel("run.1"), b"\xff\xfe not ours")
        await client.publish(stream_channel("run.1"), envelope("after"))
        await wait_until(lambda: bob.texts[-1] == "after")
        assert ann.texts[-1] == "m49"
        await hub.leave("run.1", bob)
        assert "run.1" not in str(hub.viewers)
        await client.aclose()

    asyncio.run(scenario())


def test_viewers_are_fed_again_after_redis_restarts(private_redis: stack.Service) -> None:
    async def scenario() -> None:
        hub = Hub()
        viewer = Recorder()
        await hub.join("run.7", viewer)
        client = aioredis.Redis.from_url(private_redis.url)
        await publish_until_heard(client, "run.7", viewer)
        await client.aclose()

        private_redis.stop(grace=5)
        await asyncio.sleep(1.0)
        again = stack.start_redis(
            private_redis.extra["data_dir"],
            port=private_redis.extra["port"],
            log_path=private_redis.extra["log_path"],
        )
        private_redis.process, private_redis.log = again.process, again.log
        client = aioredis.Redis.from_url(private_redis.url)
        await publish_until_heard(client, "run.7", viewer)  # fails if never resubscribed
        await client.aclose()

    asyncio.run(scenario())


def test_a_consumer_holds_what_arrives_before_its_snapshot_and_sends_it_after() -> None:
    from visualizer.consumers import StreamConsumer
    from visualizer.hub import hub

    async def scenario() -> list[str]:
        sent: list[str] = []

        async def base_send(message: dict) -> None:
            sent.append(message["text"])

        consumer = StreamConsumer()
        consumer.scope, consumer.base_send = {}, base_send
        await consumer.start_stream("run.99")
        await consumer.relay(Envelope("metrics", 1.0, "frame 1"))
        await consumer.relay(Envelope("metrics", 2.0, "frame 2"))
        assert sent == [], "nothing may go out before the snapshot"
        await consumer.send(text_data="snapshot")
        await consumer.release()
        await consumer.relay(Envelope("metrics", 3.0, "frame 3"))
        await hub.leave("run.99", consumer)
        assert stream_channel("run.99") not in hub.viewers
        return sent

    assert asyncio.run(scenario()) == ["snapshot", "frame 1", "frame 2", "frame 3"]


def test_a_consumer_whose_connect_fails_leaves_the_hub() -> None:
    from visualizer.consumers import StreamConsumer
    from visualizer.hub import hub

    class FailingConsumer(StreamConsumer):
        async def connect(self) -> None:
            await self.start_stream("run.98")
            raise RuntimeError("the database went away")

    async def scenario() -> None:
        consumer = FailingConsumer()
        consumer.scope = {}
        with pytest.raises(RuntimeError):
            await consumer.websocket_connect({"type": "websocket.connect"})
        assert stream_channel("run.98") not in hub.viewers

    asyncio.run(scenario())
