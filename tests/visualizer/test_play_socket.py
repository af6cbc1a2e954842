"""Plays over the real stack: a worker plays a policy's game at the viewer's pace, and the
viewer's commands (speed, pause, step, new game) reach it through Redis."""

import asyncio
import time

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from tests.faults.waiting import wait_for
from tests.trained_runs import finished_cem_run
from tests.wsclient import open_socket, receive_json
from tetris_site import stack
from trainer import selectors, services
from trainer.models import Run

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def session_of(user: AbstractBaseUser) -> str:
    """A signed-in session cookie for the user."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class Viewer:
    """A play socket read message by message, remembering the last frame it went past."""

    def __init__(self, socket: object) -> None:
        self.socket = socket
        self.last_frame: dict | None = None

    async def receive(self, timeout: float) -> dict:
        """The next message."""
        message = await receive_json(self.socket, timeout=timeout)
        if message["type"] == "frame":
            self.last_frame = message
        return message

    async def next_of(self, kind: str, timeout: float = 30) -> dict:
        """The next message of a type, going past others."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.receive(max(0.1, deadline - time.monotonic()))
            if message["type"] == kind:
                return message

    async def frames_during(self, seconds: float) -> list[dict]:
        """Every frame that arrives within `seconds`."""
        frames, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await self.receive(left)
            except TimeoutError:
                break
            if message["type"] == "frame":
                frames.append(message)
        return frames


def owner_key(token: str) -> bytes | None:
    """The task that holds the play, if one does."""
    return redis.Redis.from_url(settings.REDIS_URL).get(f"tetris:play:{token}:owner")


def test_controller_plays_at_the_viewers_speed_pauses_steps_and_starts_anew(
    celery_worker: stack.Service, live_daphne: stack.Service, user: AbstractBaseUser
) -> None:
    spec = services.play_create(user=user, controller="dellacherie", pps=5, seed=11)
    session = session_of(user)

    async def scenario() -> dict:
        socket = await open_socket(live_daphne.url, f"/ws/play/{spec.token}/", session=session)
        try:
            snapshot = await receive_json(socket)
            assert (
                snapshot["type"] == "snapshot" and snapshot["play"]["controller"] == "dellacherie"
            )
            assert "user_id" not in snapshot["play"]
            viewer = Viewer(socket)
            first = await viewer.next_of("frame", timeout=60)  # the worker may start cold
            slow = await viewer.frames_during(2.0)
            await socket.send('{"command": "speed", "pps": 60}')
            await viewer.frames_during(0.3)
            fast = await viewer.frames_during(2.0)
            await socket.send('{"command": "pause"}')
            paused = await viewer.next_of("status")
            await viewer.frames_during(0.3)  # any that were on their way
            paused_at = viewer.last_frame["pieces"]
            still = await viewer.frames_during(1.0)
            await socket.send('{"command": "step"}')
            stepped = await viewer.frames_during(1.0)
            await socket.send('{"command": "restart"}')
            fresh = await viewer.next_of("frame")
            return locals()
        finally:
            await socket.close()

    seen = asyncio.run(scenario())
    assert seen["first"]["seed"] == 11 and seen["first"]["episode"] == 1
    assert 6 <= len(seen["slow"]) <= 14  # 5 pieces a second for 2 s
    assert len(seen["fast"]) >= 80  # 60 a second, with room for a busy machine
    for frames in (seen["slow"], seen["fast"]):  # one frame a piece, none lost
        pieces = [frame["pieces"] for frame in frames]
        shown = [(f["episode"], f["pieces"], f["seq"], round(f["t"] % 100, 3)) for f in frames]
        first = (seen["first"]["episode"], seen["first"]["pieces"], seen["first"]["seq"])
        assert pieces == list(range(pieces[0], pieces[0] + len(pieces))), (first, shown)
    assert seen["paused"]["state"] == "paused" and seen["paused"]["pps"] == 60
    assert seen["still"] == []
    (step,) = seen["stepped"]
    assert step["pieces"] == seen["paused_at"] + 1
    assert (seen["fresh"]["episode"], seen["fresh"]["pieces"], seen["fresh"]["seed"]) == (2, 0, 12)
    # The last viewer left: the task ends within its grace period.
    wait_for(lambda: owner_key(spec.token) is None, 20, "the play's task to end")


def test_checkpoint_play_streams_and_is_cut_off_when_its_run_goes_private(
    celery_worker: stack.Service,
    live_daphne: stack.Service,
    user: AbstractBaseUser,
    other_user: AbstractBaseUser,
) -> None:
    run = finished_cem_run(user, visibility=Run.Visibility.PUBLIC)
    checkpoint = selectors.latest_checkpoint(run)
    spec = services.play_create(user=other_user, run=run, checkpoint=checkpoint, pps=30)
    owner_session, viewer_session = session_of(user), session_of(other_user)
    assert spec.label.endswith(f"checkpoint at episode {checkpoint.episode:,}")

    async def scenario() -> tuple[dict, int | None, int | None]:
        stranger = await open_socket(
            live_daphne.url, f"/ws/play/{spec.token}/", session=owner_session
        )
        await stranger.wait_closed()  # a play is its maker's, even for the run's owner
        socket = await open_socket(
            live_daphne.url, f"/ws/play/{spec.token}/", session=viewer_session
        )
        assert (await receive_json(socket))["type"] == "snapshot"
        frame = await Viewer(socket).next_of("frame", timeout=60)
        await asyncio.to_thread(
            services.run_set_visibility, run=run, user=user, visibility=Run.Visibility.PRIVATE
        )
        await asyncio.wait_for(socket.wait_closed(), 10)
        return frame, stranger.close_code, socket.close_code

    frame, stranger_code, cut_code = asyncio.run(scenario())
    assert (frame["pieces"], stranger_code, cut_code) == (frame["pieces"], 4403, 4403)
    assert len(frame["board"]) == 200


def test_bad_commands_get_errors_and_the_socket_stays_open(
    live_daphne: stack.Service, user: AbstractBaseUser
) -> None:
    spec = services.play_create(user=user, controller="bcts")
    session = session_of(user)

    async def scenario() -> list[dict]:
        socket = await open_socket(live_daphne.url, f"/ws/play/{spec.token}/", session=session)
        try:
            assert (await receive_json(socket))["type"] == "snapshot"
            replies = []
            for text in ['{"command": "stop"}', '{"command": "speed", "pps": "fast"}', "[1]"]:
                await socket.send(text)
                replies.append(await Viewer(socket).next_of("error"))
            return replies
        finally:
            await socket.close()

    replies = asyncio.run(scenario())
    assert "stop" in replies[0]["error"] and "pps" in replies[1]["error"]


def test_unknown_play_token_is_refused(live_daphne: stack.Service, user: AbstractBaseUser) -> None:
    session = session_of(user)

    async def scenario() -> int | None:
        socket = await open_socket(live_daphne.url, "/ws/play/no-such-play/", session=session)
        await socket.wait_closed()
        return socket.close_code

    assert asyncio.run(scenario()) == 4403
