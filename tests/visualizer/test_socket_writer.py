"""Frames written straight to daphne's sockets: under a live daphne the stream takes that
way, and a reader too slow for the socket's buffer still gets every message whole and in
order (the rest waits in Twisted's buffer, behind which later frames queue)."""

import asyncio
import functools
import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from tests.wsclient import open_socket, receive_json, session_and_run
from tetris_site import stack
from visualizer.hub import stream_channel
from visualizer.socket_writer import StreamMessage, writer_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def _message(i: int, size: int) -> str:
    return json.dumps({"type": "metrics", "i": i, "pad": "x" * size})


def test_a_slow_reader_gets_every_message_whole_and_in_order(live_daphne: stack.Service) -> None:
    session, run_id = session_and_run("sloane")
    # Small frames and 200 kB batches, 16 MB in all: far more than the socket buffers
    # hold while the reader does not read.
    sent = [_message(i, 200_000 if i % 5 == 0 else 300) for i in range(400)]

    async def scenario() -> list[str]:
        socket = await open_socket(
            live_daphne.url, f"/ws/runs/{run_id}/", session=session, max_queue=4
        )
        publisher = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            assert (await receive_json(socket))["type"] == "snapshot"
            # Joined: the hub subscribed before the snapshot was read.
            for text in sent:
                await publisher.publish(stream_channel(f"run.{run_id}"), text)
            await asyncio.sleep(1.0)  # the reader reads nothing meanwhile
            return [await asyncio.wait_for(socket.recv(), 30) for _ in sent]
        finally:
            await publisher.aclose()
            await socket.close()

    assert asyncio.run(scenario()) == sent
    log = Path(live_daphne.log.name).read_text()
    assert "live stream frames go straight to daphne's sockets" in log


def test_only_daphnes_websocket_send_gets_a_writer() -> None:
    async def send(message: dict) -> None: ...

    assert writer_for(send) is None
    assert writer_for(functools.partial(send, object())) is None


def test_a_message_is_framed_once_as_one_unmasked_text_frame() -> None:
    short, long = StreamMessage.from_bytes(b"hi"), StreamMessage.from_bytes(b"y" * 300)
    assert short.text == "hi"
    assert short.frame.payloadHybi == b"\x81\x02hi"
    assert long.frame.payloadHybi == b"\x81\x7e\x01\x2c" + b"y" * 300
