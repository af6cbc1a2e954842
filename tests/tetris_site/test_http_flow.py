"""daphne's HTTP responses go out no faster than their clients read them: a slow download
holds a bounded part of itself in daphne's memory, a fast one runs at full speed, and a
client that leaves half-way leaves nothing behind (tetris_site/http_flow.py)."""

import asyncio
import functools
import logging
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from django.conf import settings
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import http

from tests.trainer.test_export_streaming import signed_in, store_checkpoint
from tetris_site import http_flow, stack
from trainer import services
from trainer.storage import CHUNK_BYTES

# A checkpoint kept in the database is read (a 1 MiB chunk a query) far faster than the
# slow client takes it. Unpaced, daphne held what that client had not read: it grew by
# 56 MB; paced, by 5.3 MB, as much as for a client that reads as fast as it can.
CHUNKS = 32
SLOW_BYTES_PER_SECOND = 6 * 2**20
GROWTH_BOUND = 8 * 2**20


@pytest.fixture(scope="module")
def daphne(stack_env: dict[str, str], stack_dir: Path) -> Iterator[stack.Service]:
    """A daphne for this module alone: its memory grows only by these downloads."""
    env = {**stack_env, "CHECKPOINT_STORAGE": "database"}
    service = stack.start_daphne(
        env, port=stack.free_port(), log_path=stack_dir / "daphne-http-flow.log"
    )
    yield service
    service.stop(grace=5)


@pytest.fixture
def checkpoint(daphne: stack.Service, user: object) -> tuple[str, str, bytes]:
    """A session, the download path of a CHUNKS MiB checkpoint stored in the database, its
    bytes; a small one downloaded once first, so imports and caches are not growth."""
    session = signed_in(user)
    run = services.run_create(owner=user, name="with a large checkpoint")
    small = store_checkpoint(run, [b"small"])
    Reader(daphne, session, f"/runs/{run.pk}/checkpoints/{small.pk}/download").read()
    pieces = [bytes([index]) * CHUNK_BYTES for index in range(CHUNKS)]
    large = store_checkpoint(run, pieces)
    return session, f"/runs/{run.pk}/checkpoints/{large.pk}/download", b"".join(pieces)


class Reader:
    """One GET over a plain HTTP/1.0 socket, at most `bytes_per_second` (0: as fast as the
    bytes come), while a thread samples the server's resident set size."""

    def __init__(
        self, server: stack.Service, session: str, path: str, bytes_per_second: int = 0
    ) -> None:
        self.server = server
        self.request = (
            f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nCookie: sessionid={session}\r\n\r\n"
        ).encode()
        self.bytes_per_second = bytes_per_second
        self.process = psutil.Process(server.process.pid)
        self.rss_before = self.rss_peak = self.process.memory_info().rss
        self.seconds = 0.0

    @property
    def growth(self) -> int:
        """How far the server's memory rose above where it was."""
        return self.rss_peak - self.rss_before

    def read(self, stop_after: int | None = None) -> bytes:
        """The response's body (its first `stop_after` bytes, then the socket is closed)."""
        sampling = True

        def sample() -> None:
            while sampling:
                self.rss_peak = max(self.rss_peak, self.process.memory_info().rss)
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        received = bytearray()
        try:
            start = time.perf_counter()
            url = urlsplit(self.server.url)
            with socket.create_connection((url.hostname, url.port), 30) as client:
                client.sendall(self.request)
                while stop_after is None or len(received) < stop_after:
                    data = client.recv(64 * 1024)
                    if not data:
                        break
                    received += data
                    if self.bytes_per_second:
                        due = len(received) / self.bytes_per_second
                        time.sleep(max(0.0, due - (time.perf_counter() - start)))
            self.seconds = time.perf_counter() - start
        finally:
            sampling = False
            sampler.join()
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"), head[:200]
        return body


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_slow_client_holds_a_bounded_part_of_its_download_in_daphne(
    daphne: stack.Service, checkpoint: tuple[str, str, bytes]
) -> None:
    session, path, content = checkpoint
    reader = Reader(daphne, session, path, bytes_per_second=SLOW_BYTES_PER_SECOND)

    body = reader.read()

    assert body == content
    assert reader.growth < GROWTH_BOUND, f"daphne grew {reader.growth / 2**20:.1f} MB"
    assert "HTTP responses are paced to their clients" in Path(daphne.log.name).read_text()


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_fast_client_gets_the_whole_download_at_full_speed(
    daphne: stack.Service, checkpoint: tuple[str, str, bytes]
) -> None:
    session, path, content = checkpoint
    reader = Reader(daphne, session, path)

    body = reader.read()

    assert body == content
    # Paced or not, these 32 MiB took 0.15 to 0.25 s here: 2 s would be a gate that
    # stayed shut while the client waited.
    assert reader.seconds < 2.0, f"{reader.seconds:.2f} s"


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_client_that_leaves_half_way_leaves_no_request_behind(
    daphne: stack.Service, checkpoint: tuple[str, str, bytes]
) -> None:
    session, path, content = checkpoint
    process = psutil.Process(daphne.process.pid)
    idle_threads = process.num_threads()
    reader = Reader(daphne, session, path, bytes_per_second=SLOW_BYTES_PER_SECOND)

    body = reader.read(stop_after=len(content) // 4)

    assert content.startswith(body)
    # The request's own thread (Django's ThreadSensitiveContext) ends with the request: a
    # response waiting for ever on a gate would keep it.
    deadline = time.monotonic() + 5
    while process.num_threads() > idle_threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.num_threads() <= idle_threads, "the request is still running"
    with urllib.request.urlopen(daphne.url + "/api/status", timeout=2) as answer:
        assert answer.status == 200
    log = Path(daphne.log.name).read_text()
    assert not re.search(r"Traceback|Exception inside application|took too long", log), log


def test_only_daphnes_http_send_is_paced() -> None:
    async def send(message: dict) -> None: ...

    assert http_flow.daphne_request(send) is None
    assert http_flow.daphne_request(functools.partial(send, object())) is None


def test_elsewhere_responses_pass_through_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(http_flow, "pacing", http_flow.Pacing())
    sent: list[dict] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    async def send(message: dict) -> None:
        sent.append(message)

    middleware = http_flow.FlowControlMiddleware(app)
    with caplog.at_level(logging.WARNING, logger=http_flow.__name__):
        for _ in range(3):
            asyncio.run(middleware({"type": "http"}, None, send))

    assert [m.get("body") for m in sent] == [None, b"a", b"b"] * 3
    assert [r.getMessage() for r in caplog.records] == [
        "the ASGI server is not daphne: HTTP responses are not paced to their clients"
    ]


def test_untested_versions_are_not_paced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(http_flow, "TESTED_VERSIONS", {"Twisted": ("1.0",)})

    with caplog.at_level(logging.WARNING, logger=http_flow.__name__):
        assert http_flow.Pacing().decide(TwistedRequest().request) is False

    assert "is not a version HTTP flow control was tested with" in caplog.text


def test_the_pacing_was_tested_on_the_pinned_versions() -> None:
    """The contract: an upgrade of daphne or Twisted turns pacing off until this module's
    tests pass again on it and its version is added to TESTED_VERSIONS."""
    pins = dict(
        re.findall(
            r"^([A-Za-z]+)==(\S+)$",
            (Path(settings.BASE_DIR) / "requirements.txt").read_text(),
            re.M,
        )
    )
    for package, tested in http_flow.TESTED_VERSIONS.items():
        assert pins.get(package) in tested, f"{package} is pinned to a version not tested"


class TwistedRequest:
    """A real Twisted request on a real HTTP channel over an in-memory transport, and a
    `send` shaped like daphne's. Writing the part `full` fills the transport: Twisted
    pauses the channel's producers, as it does when a client reads slowly."""

    def __init__(self, full: bytes = b"") -> None:
        self.channel = http.HTTPChannel()
        self.channel.makeConnection(StringTransport())
        self.request = http.Request(self.channel)
        self.full = full
        self.sent: list[tuple[bytes, bool]] = []  # each part, and whether it had a producer
        self.send = functools.partial(self.handle_reply, self.request)

    async def handle_reply(self, request: http.Request, message: dict) -> None:
        if message["type"] == "http.response.body":
            self.sent.append((message["body"], request.producer is not None))
            if message["body"] == self.full:
                self.channel.pauseProducing()


def response(*parts: bytes, fail: bool = False) -> object:
    """An ASGI app that sends `parts`, each with more to come, then the end (or fails)."""

    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        if fail:
            raise RuntimeError("the export failed")
        await send({"type": "http.response.body", "body": b""})

    return http_flow.FlowControlMiddleware(app)


@pytest.fixture
def paced(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process paces, as daphne's does (on its reactor thread, tested versions)."""
    pacing = http_flow.Pacing()
    pacing.on = True
    monkeypatch.setattr(http_flow, "pacing", pacing)


def test_no_part_goes_while_twisted_holds_the_client_back(paced: None) -> None:
    twisted = TwistedRequest(full=b"a")

    async def scenario() -> None:
        sending = asyncio.create_task(response(b"a", b"b")({"type": "http"}, None, twisted.send))
        await asyncio.sleep(0.05)
        assert twisted.sent == [(b"a", True)], "b waits for the client to take a"
        twisted.channel.resumeProducing()  # the transport drained
        await sending

    asyncio.run(scenario())
    # The last part goes without a producer: Twisted finishes the request on it.
    assert twisted.sent == [(b"a", True), (b"b", True), (b"", False)]
    assert twisted.request.producer is None


def test_a_failing_response_leaves_no_producer(paced: None) -> None:
    twisted = TwistedRequest()

    with pytest.raises(RuntimeError, match="the export failed"):
        asyncio.run(response(b"a", b"b", fail=True)({"type": "http"}, None, twisted.send))

    assert twisted.request.producer is None


def test_a_lost_connection_lets_a_waiting_response_end(paced: None) -> None:
    twisted = TwistedRequest(full=b"a")

    async def scenario() -> None:
        sending = asyncio.create_task(response(b"a", b"b")({"type": "http"}, None, twisted.send))
        await asyncio.sleep(0.05)
        # What Twisted does when the client goes: the transport stops its producer, then
        # the request loses its channel.
        twisted.channel.stopProducing()
        twisted.request.connectionLost(Failure(ConnectionDone()))
        await asyncio.wait_for(sending, 1)

    asyncio.run(scenario())
    assert [part for part, _ in twisted.sent] == [b"a", b"b", b""]
