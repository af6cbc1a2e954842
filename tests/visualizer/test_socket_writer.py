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

from live.names import stream_channel
from live.protocol import Envelope
from tests.wsclient import open_socket, receive_json, session_and_run
from tetris_site import stack
from visualizer.socket_writer import prepared_frame, writer_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def _message(i: int, size: int) -> str:
    return json.dumps({"type": "metrics", "i": i, "pad": "x" * size})


def _envelope(text: str) -> Envelope:
    return Envelope("metrics", 0.0, text)


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
                await publisher.publish(stream_channel(f"run.{run_id}"), _envelope(text).to_bytes())
            await asyncio.sleep(1.0)  # the reader reads nothing meanwhile
            received = [await asyncio.wait_for(socket.recv(), 30) for _ in sent]
            # Drained: frames go straight to the socket again, still in order.
            for text in after:
                await publisher.publish(stream_channel(f"run.{run_id}"), _envelope(text).to_bytes())
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
    short, long = _envelope("hi"), _envelope("y" * 300)
    assert prepared_frame(short).payloadHybi == b"\x81\x02hi"
    assert prepared_frame(short) is prepared_frame(short), "framed once for every viewer"
    assert prepared_frame(long).payloadHybi == b"\x81\x7e\x01\x2c" + b"y" * 300


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
    writer.write(_envelope("frame"))
    assert _received(peer) == b"\x81\x05frame"
    assert writer.direct_writes == 1 and not transport._tempDataBuffer


def test_a_busy_socket_queues_the_frame_behind_what_it_holds(open_socket_pair: tuple) -> None:
    writer, transport, peer = open_socket_pair
    transport.write(b"snapshot")  # buffered by Twisted, not yet written
    writer.write(_envelope("frame"))
    assert _received(peer) == b""
    assert b"".join(transport._tempDataBuffer) == b"snapshot\x81\x05frame"
    assert writer.direct_writes == 0


def test_what_a_full_socket_does_not_take_waits_in_order_for_twisted(
    open_socket_pair: tuple,
) -> None:
    writer, transport, peer = open_socket_pair
    big = _envelope("b" * 4_000_000)  # more than the socket buffers hold
    writer.write(big)
    writer.write(_envelope("next"))
    on_the_wire = _received(peer)
    assert 0 < len(on_the_wire) < len(prepared_frame(big).payloadHybi)
    queued = b"".join(transport._tempDataBuffer)
    assert on_the_wire + queued == prepared_frame(big).payloadHybi + b"\x81\x04next"


def test_a_closing_socket_gets_nothing(open_socket_pair: tuple) -> None:
    writer, transport, peer = open_socket_pair
    writer.protocol.state = writer.protocol.STATE_CLOSING
    writer.write(_envelope("frame"))
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


@pytest.fixture
def fresh_writes(monkeypatch: pytest.MonkeyPatch) -> object:
    """This process's write mode, as at start-up (direct), restored afterwards."""
    from visualizer import socket_writer

    monkeypatch.setattr(socket_writer, "writes", socket_writer.Writes())
    monkeypatch.setattr(settings, "SOCKET_WRITES", "direct")
    return socket_writer.writes


def test_a_failing_direct_write_falls_back_for_the_process_and_still_delivers(
    open_socket_pair: tuple, fresh_writes: object, caplog: pytest.LogCaptureFixture
) -> None:
    writer, transport, _peer = open_socket_pair
    transport.socket = None  # as if Twisted renamed the attribute
    assert writer.write(_envelope("one")) is True
    assert writer.write(_envelope("two")) is True
    # Through autobahn's public sendPreparedMessage, into Twisted's buffer, in order.
    assert b"".join(transport._tempDataBuffer) == b"\x81\x03one\x81\x03two"
    assert fresh_writes.mode == "prepared"
    falls = [r for r in caplog.records if "now go" in r.getMessage()]
    assert len(falls) == 1, "one log line, not one per message"

    writer.protocol.sendPreparedMessage = None  # and autobahn changed too
    assert writer.write(_envelope("three")) is False, "the consumer sends it through ASGI"
    assert fresh_writes.mode == "asgi"


def test_untested_versions_are_probed_once_and_written_the_public_way(
    open_socket_pair: tuple, fresh_writes: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visualizer import socket_writer

    writer, _transport, _peer = open_socket_pair
    fresh_writes.probe(writer.protocol)
    assert fresh_writes.mode == "direct", "the pinned versions pass the probe"

    again = socket_writer.Writes()
    monkeypatch.setattr(socket_writer, "TESTED_VERSIONS", {"Twisted": ("1.0",)})
    again.probe(writer.protocol)
    assert again.mode == "prepared"


def test_the_direct_mode_lists_every_private_name_it_reads_and_the_pins_it_was_tested_on() -> None:
    """The contract: an upgrade shows the whole surface of private names at once."""
    import ast
    import re

    from visualizer import socket_writer

    source = Path(socket_writer.__file__).read_text()
    read: dict[str, set[str]] = {owner: set() for owner in socket_writer.PRIVATE_NAMES}
    for node in ast.walk(ast.parse(source)):
        named = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        if named and node.value.id in read:
            read[node.value.id].add(node.attr)
        is_getattr = isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr"
        if is_getattr and isinstance(node.args[0], ast.Name) and node.args[0].id in read:
            read[node.args[0].id].add(node.args[1].value)
    for owner, names in socket_writer.PRIVATE_NAMES.items():
        listed = set(names) | set(socket_writer.PUBLIC_NAMES[owner])
        assert read[owner] <= listed, f"unlisted names read on {owner}: {read[owner] - listed}"
        assert set(names) <= read[owner], f"listed but never read on {owner}"
    pins = dict(
        re.findall(
            r"^([A-Za-z]+)==(\S+)$",
            (Path(settings.BASE_DIR) / "requirements.txt").read_text(),
            re.M,
        )
    )
    for package, tested in socket_writer.TESTED_VERSIONS.items():
        assert pins.get(package) in tested, f"{package} is pinned to a version not tested"


def test_the_backlog_is_what_twisted_holds_unsent(
    open_socket_pair: tuple, fresh_writes: object
) -> None:
    writer, transport, peer = open_socket_pair
    fresh_writes.probe(writer.protocol)
    assert writer.backlog() == 0
    small, big = _envelope("frame"), _envelope("b" * 4_000_000)  # more than sockets hold
    writer.write(small)  # straight to the socket: nothing held
    assert writer.backlog() == 0
    writer.write(big)
    on_the_wire = _received(peer)
    sent = len(prepared_frame(small).payloadHybi) + len(prepared_frame(big).payloadHybi)
    held = writer.backlog()
    assert 0 < held == sent - len(on_the_wire)
    transport.doWrite()  # the peer read: Twisted writes what the socket takes now
    assert writer.backlog() < held


def test_with_untested_versions_the_backlog_is_not_read(
    open_socket_pair: tuple, fresh_writes: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visualizer import socket_writer

    writer, transport, _peer = open_socket_pair
    monkeypatch.setattr(socket_writer, "TESTED_VERSIONS", {"Twisted": ("1.0",)})
    fresh_writes.probe(writer.protocol)
    transport.write(b"held")
    assert writer.backlog() is None
