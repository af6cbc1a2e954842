"""A crowd's database calls share thread hops: calls made at once run in one hop on one
connection, in order; calls made during a hop share the next; one caller's error or
departure touches nobody else. Over a live daphne, sockets are still signed in by
Django's own session check."""

import asyncio
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from tests.wsclient import open_socket, session_and_run
from tetris_site import stack
from visualizer.crowd import DatabaseCrowd

pytestmark = pytest.mark.django_db(transaction=True)


def count_users(index: int) -> tuple[int, int, int, int]:
    """(index, users, thread, connection) from a real query."""
    users = get_user_model().objects.count()
    return index, users, threading.get_ident(), id(connection.connection)


def test_calls_made_at_once_run_in_one_hop_on_one_connection_in_order(user: object) -> None:
    async def scenario() -> tuple[list, int]:
        crowd = DatabaseCrowd()
        results = await asyncio.gather(*(crowd.call(count_users, i) for i in range(50)))
        return results, crowd.hops

    results, hops = asyncio.run(scenario())
    assert hops == 1
    assert [r[0] for r in results] == list(range(50))
    assert {r[1] for r in results} == {1}
    assert len({r[2] for r in results}) == 1, "one database thread"
    assert len({r[3] for r in results}) == 1, "one connection for the hop"
    assert threading.get_ident() not in {r[2] for r in results}


def test_calls_made_during_a_hop_share_the_next_and_a_lone_call_gets_its_own(
    user: object,
) -> None:
    started = threading.Event()

    def slow(index: int) -> tuple:
        started.set()
        threading.Event().wait(0.2)
        return count_users(index)

    async def scenario() -> int:
        crowd = DatabaseCrowd()
        first = asyncio.create_task(crowd.call(slow, 0))
        await asyncio.to_thread(started.wait, 5)  # the first hop is under way
        later = await asyncio.gather(*(crowd.call(count_users, i) for i in range(1, 30)))
        assert (await first)[0] == 0
        assert [r[0] for r in later] == list(range(1, 30))
        assert crowd.hops == 2
        await crowd.call(count_users, 99)
        return crowd.hops

    assert asyncio.run(scenario()) == 3


def test_one_callers_error_or_departure_reaches_nobody_else(user: object) -> None:
    ran: list[int] = []
    started = threading.Event()

    def record(index: int) -> int:
        if index == 0:
            started.set()
            threading.Event().wait(0.2)
        ran.append(index)
        if index == 2:
            raise ValueError("bad run id")
        return index

    async def scenario() -> list:
        crowd = DatabaseCrowd()
        first = asyncio.create_task(crowd.call(record, 0))
        await asyncio.to_thread(started.wait, 5)
        calls = [asyncio.create_task(crowd.call(record, i)) for i in range(1, 5)]
        await asyncio.sleep(0)
        calls[2].cancel()  # index 3: its caller leaves before the next hop
        await first
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(scenario())
    assert results[0] == 1 and results[3] == 4
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], asyncio.CancelledError)
    assert ran == [0, 1, 2, 4], "a departed caller's call is not run"


@pytest.mark.stack
def test_a_socket_whose_session_outlived_a_password_change_is_refused(
    live_daphne: stack.Service,
) -> None:
    session, run_id = session_and_run("changed-password")
    owner = get_user_model().objects.get(username="changed-password")
    owner.set_password("a-new-password-for-tests-2")  # the session's auth hash goes stale
    owner.save()

    async def scenario() -> int | None:
        socket = await open_socket(live_daphne.url, f"/ws/runs/{run_id}/", session=session)
        await asyncio.wait_for(socket.wait_closed(), 10)
        return socket.close_code

    assert asyncio.run(scenario()) == 4401
