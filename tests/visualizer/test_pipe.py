"""The whole pipe: a task in a real worker publishes through the bridge to a run's group,
and a WebSocket client connected to a live daphne receives it."""

import asyncio

import pytest

from tests.stack_tasks import publish_status
from tests.wsclient import open_socket, receive_json, session_and_run
from tetris_site import stack

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_worker_message_reaches_browser_socket(
    celery_worker: stack.Service, live_daphne: stack.Service
) -> None:
    session, run_id = session_and_run("ada")

    async def scenario() -> dict:
        socket = await open_socket(live_daphne.url, f"/ws/runs/{run_id}/", session=session)
        try:
            # The group subscription is in place once the snapshot arrives.
            assert (await receive_json(socket))["type"] == "snapshot"
            publish_status.delay(run_id, "running", "from worker", 12.5)
            return await receive_json(socket, timeout=30)
        finally:
            await socket.close()

    message = asyncio.run(scenario())
    assert message == {"type": "status", "status": "running", "detail": "from worker", "t": 12.5}


def test_another_users_private_run_is_closed_with_4403(live_daphne: stack.Service) -> None:
    _, run_id = session_and_run("dee")
    stranger, _ = session_and_run("eve")

    async def scenario() -> int:
        socket = await open_socket(live_daphne.url, f"/ws/runs/{run_id}/", session=stranger)
        await socket.wait_closed()
        return socket.close_code

    assert asyncio.run(scenario()) == 4403


def test_anonymous_socket_is_closed_with_4401(live_daphne: stack.Service) -> None:
    async def scenario() -> int:
        socket = await open_socket(live_daphne.url, "/ws/runs/7/")
        await socket.wait_closed()
        return socket.close_code

    assert asyncio.run(scenario()) == 4401


def test_foreign_origin_is_refused(live_daphne: stack.Service) -> None:
    session, run_id = session_and_run("bob")

    async def scenario() -> None:
        socket = await open_socket(
            live_daphne.url, f"/ws/runs/{run_id}/", session=session, origin="http://evil.example"
        )
        await socket.wait_closed()

    with pytest.raises(Exception, match=r"403|rejected"):
        asyncio.run(scenario())


def test_malformed_json_gets_an_error_and_the_socket_stays_open(
    live_daphne: stack.Service,
) -> None:
    session, run_id = session_and_run("cy")

    async def scenario() -> list[dict]:
        socket = await open_socket(live_daphne.url, f"/ws/runs/{run_id}/", session=session)
        try:
            assert (await receive_json(socket))["type"] == "snapshot"
            replies = []
            for text in ["{not json", "[1, 2]", '{"command": "dance"}', "x" * 10_000]:
                await socket.send(text)
                replies.append(await receive_json(socket))
            return replies
        finally:
            await socket.close()

    replies = asyncio.run(scenario())
    assert [reply["type"] for reply in replies] == ["error"] * 4
    assert "dance" in replies[2]["error"]
