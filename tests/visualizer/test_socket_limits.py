"""A shared installation's sockets on a real daphne: a viewer who loses access is closed
within seconds, whatever took it away; one user cannot hold more than
MAX_SOCKETS_PER_USER sockets; a reader that never reads costs daphne no memory to speak of
and is closed once it falls far behind, while the other viewers keep getting frames."""

import asyncio
import json
import math
import socket
import time
from collections.abc import Callable

import psutil
import pytest
import redis.asyncio as aioredis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from live.names import run_group, stream_channel
from live.protocol import CLOSE_FORBIDDEN, CLOSE_TOO_MANY, CLOSE_UNAUTHENTICATED, Envelope
from tests.wsclient import never_reading_socket, open_socket, receive_json
from tetris_site import stack
from trainer import services
from trainer.models import Run
from visualizer.delivery import MAX_BACKLOG_SECONDS

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"
REVOKED_WITHIN_SECONDS = 5.0


def signed_in(user: object) -> Client:
    """A browser signed in as `user`, with a session of its own."""
    client = Client()
    client.force_login(user)
    return client


def make_user(username: str, password: str | None = None, **fields: object) -> object:
    """A user; with no password unless one is given (hashing one takes a good part of a
    second)."""
    return get_user_model().objects.create_user(username, password=password, **fields)


def in_thread(change: Callable[[], object]) -> Callable[[], None]:
    """`change` to run in a worker thread, closing that thread's database connection."""

    def run() -> None:
        try:
            change()
        finally:
            connection.close()

    return run


def sign_out(browser: Client) -> Callable[[], None]:
    return lambda: browser.post("/accounts/logout/")


def change_password_elsewhere(user: object) -> Callable[[], None]:
    # In another browser: that session stays signed in, every other one is signed out.
    def change() -> None:
        elsewhere = signed_in(user)
        answer = elsewhere.post(
            "/accounts/password_change/",
            {
                "old_password": PASSWORD,
                "new_password1": "a-new-pw-for-tests-2",
                "new_password2": "a-new-pw-for-tests-2",
            },
        )
        assert answer.status_code == 302, answer.content[:500]

    return change


def save_fields(instance: object, **fields: object) -> Callable[[], None]:
    # A plain save, as the Django admin makes: no service, no event.
    def change() -> None:
        for name, value in fields.items():
            setattr(instance, name, value)
        instance.save()

    return change


REVOCATIONS = {
    # case: the code the socket must be closed with
    "sign-out": CLOSE_UNAUTHENTICATED,
    "password change": CLOSE_UNAUTHENTICATED,
    "deactivation": CLOSE_UNAUTHENTICATED,
    "staff demotion": CLOSE_FORBIDDEN,
    "made private by a plain save": CLOSE_FORBIDDEN,
}


def revocation(case: str) -> tuple[Client, Run, Callable[[], None]]:
    """A viewer's browser, the run they watch, and what takes their access away."""
    owner = make_user(f"ada-{case}")
    run = services.run_create(owner=owner, name="watched", visibility="private")
    if case == "sign-out":
        browser = signed_in(owner)
        return browser, run, sign_out(browser)
    if case == "password change":
        owner.set_password(PASSWORD)
        owner.save()
        return signed_in(owner), run, change_password_elsewhere(owner)
    if case == "deactivation":
        return signed_in(owner), run, save_fields(owner, is_active=False)
    if case == "staff demotion":  # staff watching someone else's private run
        staff = make_user("sam", is_staff=True)
        return signed_in(staff), run, save_fields(staff, is_staff=False)
    assert case == "made private by a plain save"
    run.visibility = Run.Visibility.PUBLIC
    run.save()
    viewer = signed_in(make_user("bob"))
    return viewer, run, save_fields(run, visibility=Run.Visibility.PRIVATE)


def test_a_viewer_who_loses_access_is_closed_within_5_seconds(live_daphne: stack.Service) -> None:
    # The cases side by side, each on a socket of its own: one wait for all of them.
    cases = {case: revocation(case) for case in REVOCATIONS}

    async def closed(case: str) -> tuple[int | None, float]:
        browser, run, revoke = cases[case]
        session = browser.cookies["sessionid"].value
        socket = await open_socket(live_daphne.url, f"/ws/runs/{run.pk}/", session=session)
        assert (await receive_json(socket))["type"] == "snapshot"
        await asyncio.to_thread(in_thread(revoke))
        revoked_at = time.monotonic()
        try:
            await asyncio.wait_for(socket.wait_closed(), 2 * REVOKED_WITHIN_SECONDS)
        except TimeoutError:
            await socket.close()
            return None, math.inf
        return socket.close_code, round(time.monotonic() - revoked_at, 1)

    async def scenario() -> dict[str, tuple[int | None, float]]:
        outcomes = await asyncio.gather(*(closed(case) for case in cases))
        return dict(zip(cases, outcomes, strict=True))

    outcomes = asyncio.run(scenario())
    assert {case: code for case, (code, _) in outcomes.items()} == REVOCATIONS, outcomes
    assert all(seconds < REVOKED_WITHIN_SECONDS for _, seconds in outcomes.values()), outcomes


def test_one_socket_past_the_users_cap_is_closed_with_4429_while_another_user_connects(
    live_daphne: stack.Service,
) -> None:
    cap = settings.MAX_SOCKETS_PER_USER  # the default, as the test daphne has it
    owner = make_user("ada")
    run = services.run_create(owner=owner, name="watched", visibility="public")
    path = f"/ws/runs/{run.pk}/"
    sessions = [signed_in(owner).cookies["sessionid"].value for _ in range(2)]
    other = signed_in(make_user("bob")).cookies["sessionid"].value

    async def scenario() -> tuple[dict, int | None, dict, dict]:
        # Over two browsers: the cap is the user's, not the session's.
        sockets = [
            await open_socket(live_daphne.url, path, session=sessions[i % 2]) for i in range(cap)
        ]
        try:
            for socket in sockets:
                assert (await receive_json(socket))["type"] == "snapshot"
            one_more = await open_socket(live_daphne.url, path, session=sessions[0])
            refusal = await receive_json(one_more)
            await asyncio.wait_for(one_more.wait_closed(), 10)
            someone_else = await open_socket(live_daphne.url, path, session=other)
            elsewhere = await receive_json(someone_else)
            await someone_else.close()
            # One closed, one may open again.
            await sockets.pop().close()
            again = await open_socket(live_daphne.url, path, session=sessions[1])
            sockets.append(again)
            return refusal, one_more.close_code, elsewhere, await receive_json(again)
        finally:
            await asyncio.gather(*(socket.close() for socket in sockets))

    refusal, code, elsewhere, again = asyncio.run(scenario())
    assert refusal["type"] == "error" and f"at most {cap}" in refusal["error"]
    assert code == CLOSE_TOO_MANY
    assert elsewhere["type"] == "snapshot"
    assert again["type"] == "snapshot"


def daphne_holds(daphne: stack.Service, client: socket.socket) -> bool:
    """Whether daphne still has the client's TCP connection open."""
    port = client.getsockname()[1]
    connections = psutil.Process(daphne.process.pid).net_connections(kind="tcp")
    return any(c.raddr and c.raddr.port == port for c in connections)


def rss(daphne: stack.Service) -> int:
    return psutil.Process(daphne.process.pid).memory_info().rss


class Stream:
    """Publishes big messages on a run's stream, as fast as a worker never would."""

    def __init__(self, run_id: int) -> None:
        self.channel = stream_channel(run_group(run_id))
        self.redis = aioredis.Redis.from_url(settings.REDIS_URL)
        self.seq = 0

    async def publish(self, kind: str, size: int) -> None:
        self.seq += 1
        t = time.time()
        text = json.dumps({"type": kind, "seq": self.seq, "t": t, "pad": "x" * size})
        await self.redis.publish(self.channel, Envelope(kind, t, text).to_bytes())

    async def run(self, kind: str, *, size: int, per_second: int, seconds: float) -> None:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            await self.publish(kind, size)
            await asyncio.sleep(1 / per_second)


async def read_frames(socket: object, until: float) -> list[tuple[float, dict]]:
    """The frames a reading viewer gets until monotonic time `until`, as (delay, frame):
    the delay is from its publication to its arrival."""
    got = []
    while (left := until - time.monotonic()) > 0:
        try:
            message = json.loads(await asyncio.wait_for(socket.recv(), left))
        except TimeoutError:
            break
        if message["type"] == "frame":
            got.append((time.time() - message["t"], message))
    return got


def test_a_reader_that_never_reads_is_skipped_boards_while_others_get_them_at_once(
    live_daphne: stack.Service,
) -> None:
    owner = make_user("ada")
    run = services.run_create(owner=owner, name="fast")
    session = signed_in(owner).cookies["sessionid"].value
    path = f"/ws/runs/{run.pk}/"
    seconds, size, per_second = 2.0, 200_000, 50  # 20 MB of boards

    async def scenario() -> tuple[int, list[tuple[float, dict]], bool]:
        stuck = await asyncio.to_thread(never_reading_socket, live_daphne.url, path, session)
        reader = await open_socket(live_daphne.url, path, session=session)
        stream = Stream(run.pk)
        try:
            assert (await receive_json(reader))["type"] == "snapshot"
            await stream.run("frame", size=size, per_second=10, seconds=0.5)  # warm up
            await read_frames(reader, time.monotonic() + 0.5)
            before = rss(live_daphne)
            publishing = asyncio.create_task(
                stream.run("frame", size=size, per_second=per_second, seconds=seconds)
            )
            frames = await read_frames(reader, time.monotonic() + seconds + 0.5)
            await publishing
            return rss(live_daphne) - before, frames, daphne_holds(live_daphne, stuck)
        finally:
            stuck.close()
            await reader.close()
            await stream.redis.aclose()

    grown, frames, stuck_still_open = asyncio.run(scenario())
    # Without the skipping, daphne holds every board for it: 20 MB, until it is closed.
    assert grown < 5_000_000, f"daphne grew {grown / 1e6:.1f} MB for a reader that never reads"
    assert stuck_still_open, "skipped boards, not closed: what it holds stays small"
    assert len(frames) > seconds * per_second / 2, "the reading viewer got most boards"
    assert max(delay for delay, _ in frames) < 1.0


def test_a_reader_left_far_behind_by_other_messages_is_closed_while_others_keep_up(
    live_daphne: stack.Service,
) -> None:
    owner = make_user("ada")
    run = services.run_create(owner=owner, name="busy")
    session = signed_in(owner).cookies["sessionid"].value
    path = f"/ws/runs/{run.pk}/"
    deadline_seconds = MAX_BACKLOG_SECONDS + 5  # filling the backlog, then the close

    async def scenario() -> tuple[float, list[float], bool]:
        stuck = await asyncio.to_thread(never_reading_socket, live_daphne.url, path, session)
        reader = await open_socket(live_daphne.url, path, session=session)
        stream = Stream(run.pk)
        delays: list[float] = []

        async def read_all() -> None:
            while True:
                message = json.loads(await reader.recv())
                delays.append(time.time() - message["t"])

        try:
            assert (await receive_json(reader))["type"] == "snapshot"
            reading = asyncio.create_task(read_all())
            # Metrics are never skipped: 10 MB a second of them pile up for the stuck one.
            publishing = asyncio.create_task(
                stream.run("metrics", size=200_000, per_second=50, seconds=deadline_seconds)
            )
            start = time.monotonic()
            while daphne_holds(live_daphne, stuck) and time.monotonic() - start < deadline_seconds:
                await asyncio.sleep(0.1)
            closed_after = time.monotonic() - start
            publishing.cancel()
            await asyncio.sleep(0.5)
            reading.cancel()
            return closed_after, delays, reader.state.name == "OPEN"
        finally:
            stuck.close()
            await reader.close()
            await stream.redis.aclose()

    closed_after, delays, reader_open = asyncio.run(scenario())
    assert closed_after < deadline_seconds, "the reader left behind was never closed"
    assert reader_open and len(delays) > 40
    assert max(delays) < 1.0
