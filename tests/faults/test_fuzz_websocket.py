"""Fuzz the live viewer's socket, /ws/runs/<id>/, on a real daphne.

Whatever a client sends (junk, JSON of the wrong shape, binary frames, megabytes, floods),
the socket answers an `error` in words or daphne closes it with a code, the server goes on
serving other viewers, and daphne logs no traceback.
"""

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.wsclient import open_socket, receive_json
from tetris_site import stack
from trainer import services
from trainer.models import Run

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024
# daphne's own limit on a WebSocket message (its --websocket_max_message_size default).
DAPHNE_MAX_MESSAGE = MIB
# What a client reports when the server drops the TCP connection without a close frame.
CLOSE_DROPPED = 1006
FLOOD = 2000

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
COMMANDS = st.one_of(
    st.sampled_from(["stop", "start", "STOP", " stop", "stop\x00", "", "resume", "pause"]),
    st.text(max_size=80),
    JSON_VALUES,
)
MESSAGES = st.one_of(
    # JSON objects, most of them with a `command` of some kind
    st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3).flatmap(
        lambda extra: COMMANDS.map(lambda command: json.dumps({**extra, "command": command}))
    ),
    JSON_VALUES.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
)
# Known troublemakers, sent before the random ones.
MALFORMED = [
    "",
    "{",
    '{"command": "stop"',
    "null",
    "NaN",
    '{"command": "stop", "command": 1}',
    "\ufeff{}",
    "x" * 4097,
    # deeper than Python's json parser recurses (it raises RecursionError, not ValueError)
    "[" * 4000,
    '{"a": ' * 900 + "1" + "}" * 900,
]


def session_of(user: object) -> str:
    """The session cookie of a signed-in browser."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def has_words(text: object) -> bool:
    """Whether an error message holds at least one word."""
    return isinstance(text, str) and any(part.isalpha() and len(part) > 1 for part in text.split())


@pytest.fixture
def daphne_log(live_daphne: stack.Service, stack_dir: Path) -> Iterator[Path]:
    """daphne's log; after the test, what daphne wrote meanwhile holds no traceback."""
    path = stack_dir / "daphne.log"
    start = path.stat().st_size
    yield path
    with path.open("rb") as log:
        log.seek(start)
        written = log.read().decode(errors="replace")
    assert "Traceback" not in written, written[-4000:]


@pytest.fixture
def watched_run(user: object, other_user: object) -> Iterator[tuple[int, str]]:
    """A public run of ada's, and the session of bob, who may watch it but not control it."""
    run = services.run_create(owner=user, name="watched", visibility="public")
    yield run.pk, session_of(other_user)
    for run in Run.objects.filter(status__in=Run.ACTIVE):
        run.request_stop()


async def opened(url: str, run_id: int, session: str) -> ClientConnection:
    """A viewer's socket, once its snapshot has arrived."""
    socket = await open_socket(url, f"/ws/runs/{run_id}/", session=session)
    snapshot = await receive_json(socket)
    assert snapshot["type"] == "snapshot", snapshot
    return socket


async def answer(socket: ClientConnection, message: str | bytes) -> dict:
    """Send one message and read the reply."""
    await socket.send(message)
    return await receive_json(socket)


async def still_served(url: str, run_id: int, session: str) -> None:
    """A new viewer gets a snapshot, and an answer to a bad message, in a few seconds."""
    socket = await asyncio.wait_for(opened(url, run_id, session), 15)
    try:
        reply = await asyncio.wait_for(answer(socket, "{"), 15)
        assert reply["type"] == "error"
    finally:
        await socket.close()


def test_random_messages_are_answered_with_an_error_in_words(
    live_daphne: stack.Service, daphne_log: Path, watched_run: tuple[int, str]
) -> None:
    run_id, session = watched_run
    with asyncio.Runner() as runner:
        socket = runner.run(opened(live_daphne.url, run_id, session))
        for message in MALFORMED:
            reply = runner.run(answer(socket, message))
            assert reply["type"] == "error" and has_words(reply["error"]), (message[:50], reply)

        @settings(
            max_examples=400,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(message=MESSAGES)
        def the_socket_answers(message: str | bytes) -> None:
            reply = runner.run(answer(socket, message))
            assert reply["type"] == "error", (message[:200], reply)
            assert has_words(reply["error"]), (message[:200], reply)

        the_socket_answers()
        assert socket.state.name == "OPEN"
        runner.run(socket.close())
        runner.run(still_served(live_daphne.url, run_id, session))


def test_megabyte_and_binary_messages_are_refused_without_a_crash(
    live_daphne: stack.Service, daphne_log: Path, watched_run: tuple[int, str]
) -> None:
    run_id, session = watched_run

    async def closed_by(message: str | bytes | Iterator[str], *, text: bool | None = None) -> int:
        socket = await opened(live_daphne.url, run_id, session)
        with contextlib.suppress(ConnectionClosed):  # the drop may come while we still send
            await socket.send(message, text=text)
            reply = await receive_json(socket, timeout=15)
            raise AssertionError(f"answered {reply!r} instead of closing")
        await socket.wait_closed()
        return socket.close_code

    async def scenario() -> None:
        socket = await opened(live_daphne.url, run_id, session)
        # Up to daphne's limit, the consumer reads the message and refuses it in words.
        for message in [b"\x00" * 100, b"\xff" * DAPHNE_MAX_MESSAGE, "x" * DAPHNE_MAX_MESSAGE]:
            reply = await answer(socket, message)
            assert reply["type"] == "error" and "at most 4096" in reply["error"]
        reply = await answer(socket, json.dumps({"command": "stop", "pad": "x" * (MIB - 40)}))
        assert reply["type"] == "error"
        await socket.close()
        # Past it, daphne (autobahn, which fails by drop) cuts the TCP connection before the
        # consumer sees anything: no close frame, so the client reports 1006.
        assert await closed_by("x" * (DAPHNE_MAX_MESSAGE + 1)) == CLOSE_DROPPED
        assert await closed_by(b"\x00" * (16 * MIB)) == CLOSE_DROPPED
        assert await closed_by(iter(["x" * (MIB // 2)] * 3)) == CLOSE_DROPPED
        # So does a text frame that is not UTF-8.
        assert await closed_by(b"\xff\xfe{}", text=True) == CLOSE_DROPPED
        await still_served(live_daphne.url, run_id, session)

    asyncio.run(scenario())


def test_a_flood_is_answered_in_full_while_other_viewers_are_served(
    live_daphne: stack.Service, daphne_log: Path, watched_run: tuple[int, str]
) -> None:
    run_id, session = watched_run
    # Junk, wrong shapes, and commands this viewer may not give (each one a database read).
    kinds = ["{", "[1]", '{"command": 5}', '{"command": "dance"}', '{"command": "stop"}']

    async def scenario() -> list[dict]:
        flooder = await opened(live_daphne.url, run_id, session)
        bystander = await opened(live_daphne.url, run_id, session)

        async def flood() -> None:
            for i in range(FLOOD):
                await flooder.send(kinds[i % len(kinds)])

        async def read_replies() -> list[dict]:
            return [await receive_json(flooder, timeout=30) for _ in range(FLOOD)]

        sending, reading = asyncio.create_task(flood()), asyncio.create_task(read_replies())
        # Meanwhile the server still answers a viewer who was there and one who arrives.
        reply = await asyncio.wait_for(answer(bystander, '{"command": "dance"}'), 15)
        assert reply["type"] == "error"
        await still_served(live_daphne.url, run_id, session)
        await sending
        replies = await reading
        assert flooder.state.name == "OPEN"
        await flooder.close()
        await bystander.close()
        return replies

    replies = asyncio.run(scenario())
    assert len(replies) == FLOOD
    assert all(reply["type"] == "error" and has_words(reply["error"]) for reply in replies)
    # Each `stop` is refused for this viewer, or, past the command rate, ignored unread.
    may_not_stop = [reply["error"] for reply in replies[4 :: len(kinds)]]
    refusals = {error for error in may_not_stop if not error.startswith("too many commands")}
    assert len(refusals) == 1, refusals
