"""Frames written straight to daphne's sockets: under a live daphne the stream takes that
way, and a reader too slow for the socket's buffer still gets every message whole and in
order (the rest waits in Twisted's buffer, behind which later frames queue)."""

import asyncio
import functools
import json
import socket
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
    after = [_message(i, 300) for i in range(400, 450)]

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
            received = [await asyncio.wait_for(socket.recv(), 30) for _ in sent]
            # Drained: frames go straight to the socket again, still in order.
            for text in after:
                await publisher.publish(stream_channel(f"run.{run_id}"), text)
            return received + [await asyncio.wait_for(socket.recv(), 30) for _ in after]
        finally:
            await publisher.aclose()
            await socket.close()

    assert asyncio.run(scenario()) == sent + after
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


class _Reactor:
    """Just enough of a reactor for a Twisted TCP transport that is never run."""

    def addReader(self, reader: object) -> None: ...

    def removeReader(self, reader: object) -> None: ...

    def addWriter(self, writer: object) -> None: ...

    def removeWriter(self, writer: object) -> None: ...


@pytest.fixture
def open_socket_pair() -> tuple:
    """A daphne-like WebSocket protocol, open, on a real Twisted transport over a socketpair."""
    from collections import deque

    from autobahn.twisted.websocket import WebSocketServerProtocol
    from autobahn.websocket.protocol import TrafficStats
    from twisted.internet import tcp

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    protocol = WebSocketServerProtocol()
    transport = tcp.Server(ours, protocol, ("127.0.0.1", 1), None, 1, _Reactor())
    protocol.transport, protocol.state = transport, WebSocketServerProtocol.STATE_OPEN
    protocol._perMessageCompress, protocol.send_queue = None, deque()
    protocol.peer, protocol.logOctets, protocol.trafficStats = "test", False, TrafficStats()
    writer = writer_for(functools.partial(_no_send, protocol))
    yield writer, transport, theirs
    ours.close()
    theirs.close()


async def _no_send(message: dict) -> None: ...


def _received(peer: socket.socket) -> bytes:
    peer.setblocking(False)
    chunks = []
    while True:
        try:
            chunks.append(peer.recv(1 << 20))
        except BlockingIOError:
            return b"".join(chunks)


def test_an_idle_socket_gets_the_frame_in_one_send(open_socket_pair: tuple) -> None:
    writer, transport, peer = open_socket_pair
    writer.write(StreamMessage.from_bytes(b"frame"))
    assert _received(peer) == b"\x81\x05frame"
    assert writer.direct_writes == 1 and not transport._tempDataBuffer


def test_a_busy_socket_queues_the_frame_behind_what_it_holds(open_socket_pair: tuple) -> None:
    writer, transport, peer = open_socket_pair
    transport.write(b"snapshot")  # buffered by Twisted, not yet written
    writer.write(StreamMessage.from_bytes(b"frame"))
    assert _received(peer) == b""
    assert b"".join(transport._tempDataBuffer) == b"snapshot\x81\x05frame"
    assert writer.direct_writes == 0


def test_what_a_full_socket_does_not_take_waits_in_order_for_twisted(
    open_socket_pair: tuple,
) -> None:
    writer, transport, peer = open_socket_pair
    big = StreamMessage.from_bytes(b"b" * 4_000_000)  # more than the socket buffers hold
    writer.write(big)
    writer.write(StreamMessage.from_bytes(b"next"))
    on_the_wire = _received(peer)
    assert 0 < len(on_the_wire) < len(big.frame.payloadHybi)
    queued = b"".join(transport._tempDataBuffer)
    assert on_the_wire + queued == big.frame.payloadHybi + b"\x81\x04next"


def test_a_closing_socket_gets_nothing(open_socket_pair: tuple) -> None:
    writer, transport, peer = open_socket_pair
    writer.protocol.state = writer.protocol.STATE_CLOSING
    writer.write(StreamMessage.from_bytes(b"frame"))
    assert _received(peer) == b"" and not transport._tempDataBuffer


def test_a_wrapped_transport_such_as_tls_gets_no_writer(open_socket_pair: tuple) -> None:
    from twisted.protocols.policies import ProtocolWrapper

    writer, transport, _ = open_socket_pair
    # TLS served by daphne itself wraps the TCP transport and forwards attribute reads to
    # it: writing to the socket underneath would bypass the encryption.
    wrapped = ProtocolWrapper(None, writer.protocol)
    wrapped.transport = transport
    assert wrapped.dataBuffer == b"" and wrapped.TLS is False  # read through to the socket
    writer.protocol.transport = wrapped
    assert writer_for(functools.partial(_no_send, writer.protocol)) is None
