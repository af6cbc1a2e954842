"""A viewer's socket closes with 4403 as soon as the run they watch turns private."""

import asyncio

import pytest
from django.db import connection
from django.test import Client

from tests.wsclient import open_socket, receive_json
from tetris_site import stack
from trainer import services

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def make_private(run: object, user: object) -> None:
    """Turn the run private from a worker thread, closing that thread's connection."""
    try:
        services.run_set_visibility(run=run, user=user, visibility="private")
    finally:
        connection.close()


def session_of(user: object) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_socket_closes_when_the_run_becomes_private(
    live_daphne: stack.Service, user: object, other_user: object
) -> None:
    run = services.run_create(owner=user, name="shown", visibility="public")
    watcher, owner = session_of(other_user), session_of(user)

    async def scenario() -> tuple[int | None, bool]:
        stranger = await open_socket(live_daphne.url, f"/ws/runs/{run.pk}/", session=watcher)
        mine = await open_socket(live_daphne.url, f"/ws/runs/{run.pk}/", session=owner)
        snapshot = await receive_json(stranger)
        assert snapshot["type"] == "snapshot" and snapshot["run"]["can_control"] is False
        assert (await receive_json(mine))["run"]["can_control"] is True
        await asyncio.to_thread(make_private, run, user)
        await asyncio.wait_for(stranger.wait_closed(), 10)
        still_open = mine.state.name == "OPEN"
        await mine.close()
        return stranger.close_code, still_open

    code, owner_still_watching = asyncio.run(scenario())
    assert code == 4403
    assert owner_still_watching
