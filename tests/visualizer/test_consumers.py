"""The consumers through Channels' WebsocketCommunicator: access, the snapshot, commands,
and the stream from the bridge, in this process, on the test Redis (no daphne)."""

import asyncio
import json
import time
from importlib import import_module

import pytest
import redis
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.test import Client

from live import bridge
from live.names import overlay_key, run_group
from live.protocol import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, Frame, RunStatus
from trainer import services
from trainer.models import Run
from visualizer.hub import hub
from visualizer.routing import websocket_urlpatterns

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def run_scenario(scenario: object) -> object:
    """Run a scenario on a new event loop; a hang fails in a minute, not at the suite's timeout."""
    return asyncio.run(asyncio.wait_for(scenario, 60))


def signed_in_session(user: object) -> SessionBase:
    """A session that signs `user` in, as the browser's cookie would bring it."""
    client = Client()
    client.force_login(user)
    return import_module(settings.SESSION_ENGINE).SessionStore(client.session.session_key)


async def connect(user: object, path: str) -> tuple[WebsocketCommunicator, dict | int]:
    """A socket for `user`, and its first message, or the code it was closed with."""
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    if user.is_authenticated:
        communicator.scope["session"] = await asyncio.to_thread(signed_in_session, user)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    first = await communicator.receive_output(timeout=10)
    if first["type"] == "websocket.close":
        return communicator, first["code"]
    return communicator, json.loads(first["text"])


def test_an_anonymous_socket_is_closed_with_4401() -> None:
    async def scenario() -> int:
        _, code = await connect(AnonymousUser(), "/ws/runs/1/")
        return code

    assert run_scenario(scenario()) == CLOSE_UNAUTHENTICATED


def test_someone_elses_private_run_is_closed_with_4403(user: object, other_user: object) -> None:
    run = services.run_create(owner=user, name="mine")

    async def scenario() -> int:
        _, code = await connect(other_user, f"/ws/runs/{run.pk}/")
        return code

    assert run_scenario(scenario()) == CLOSE_FORBIDDEN


def test_the_owner_gets_the_snapshot_then_what_the_bridge_publishes(user: object) -> None:
    run = services.run_create(owner=user, name="watched")

    async def scenario() -> tuple[dict, dict]:
        socket, snapshot = await connect(user, f"/ws/runs/{run.pk}/")
        try:
            published = bridge.publish(run_group(run.pk), RunStatus("running", "hi", 1.0))
            await asyncio.wrap_future(published)
            return snapshot, await socket.receive_json_from(timeout=10)
        finally:
            await socket.disconnect()

    snapshot, message = run_scenario(scenario())
    assert snapshot["type"] == "snapshot" and snapshot["run"]["id"] == run.pk
    assert snapshot["run"]["can_control"] is True and snapshot["frame"] is None
    assert message == {"type": "status", "status": "running", "detail": "hi", "t": 1.0}


def test_bad_commands_get_an_error_and_the_socket_stays_open(user: object) -> None:
    run = services.run_create(owner=user, name="queued")

    async def scenario() -> list[dict]:
        socket, _ = await connect(user, f"/ws/runs/{run.pk}/")
        replies = []
        try:
            for text in ["{not json", '{"command": "dance"}', '{"command": "start"}']:
                await socket.send_to(text_data=text)
                replies.append(await socket.receive_json_from(timeout=10))
        finally:
            await socket.disconnect()
        return replies

    replies = run_scenario(scenario())
    assert [reply["type"] for reply in replies] == ["error"] * 3
    assert "not valid JSON" in replies[0]["error"] and "dance" in replies[1]["error"]
    assert "only a stopped or failed run can start" in replies[2]["error"]


def test_a_viewer_is_closed_with_4403_when_the_run_turns_private(
    user: object, other_user: object
) -> None:
    run = services.run_create(owner=user, name="shown", visibility="public")

    async def scenario() -> dict:
        socket, snapshot = await connect(other_user, f"/ws/runs/{run.pk}/")
        assert snapshot["type"] == "snapshot"
        await asyncio.to_thread(
            services.run_set_visibility, run=run, user=user, visibility="private"
        )
        return await socket.receive_output(timeout=10)

    assert run_scenario(scenario()) == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


def test_the_overlay_reaches_the_worker_and_only_its_socket_gets_the_options(
    user: object, other_user: object
) -> None:
    run = services.run_create(owner=user, name="inspected", visibility="public")
    group = run_group(run.pk)
    options = [{"rotation": 0, "column": 4, "value": 1.25, "chosen": True}]

    async def scenario() -> tuple[list[dict], dict, dict, bool]:
        looking, _ = await connect(other_user, f"/ws/runs/{run.pk}/")  # any viewer may look
        plain, _ = await connect(user, f"/ws/runs/{run.pk}/")
        try:
            replies = []
            for text in ['{"command": "overlay"}', '{"command": "overlay", "on": "yes"}']:
                await looking.send_to(text_data=text)
                replies.append(await looking.receive_json_from(timeout=10))
            await looking.send_to(text_data='{"command": "overlay", "on": true}')
            deadline = time.monotonic() + 10
            while not await asyncio.to_thread(bridge.options_wanted, group):
                assert time.monotonic() < deadline, "the worker never heard of the overlay"
                await asyncio.sleep(0.05)
            frame = Frame(1, time.time(), 1, "." * 200, "O", 0, 0, 0, piece="T", options=options)
            await asyncio.wrap_future(bridge.publish(group, frame))
            seen, unseen = await asyncio.gather(
                looking.receive_json_from(timeout=10), plain.receive_json_from(timeout=10)
            )
            await looking.send_to(text_data='{"command": "overlay", "on": false}')
            await looking.send_to(text_data='{"command": "overlay", "on": false}')
            await asyncio.sleep(0.1)
            return replies, seen, unseen, bool(hub.options)
        finally:
            await looking.disconnect()
            await plain.disconnect()

    replies, seen, unseen, still_wanted = run_scenario(scenario())
    assert [reply["type"] for reply in replies] == ["error", "error"]
    assert 'overlay needs "on": true or false' in replies[0]["error"]
    assert seen["options"] == options and seen["piece"] == "T"
    assert "options" not in unseen and unseen["piece"] == "T" and unseen["seq"] == seen["seq"]
    assert not still_wanted


def test_the_overlay_key_lives_while_a_viewer_keeps_it_on_and_ends_after(
    user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visualizer import hub as hub_module

    monkeypatch.setattr(hub_module, "OPTIONS_REFRESH_SECONDS", 0.2)
    monkeypatch.setattr(hub_module, "OPTIONS_TTL_SECONDS", 1)
    run = services.run_create(owner=user, name="kept on")
    key = overlay_key(run_group(run.pk))
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def scenario() -> tuple[bool, bool]:
        socket, _ = await connect(user, f"/ws/runs/{run.pk}/")
        await socket.send_to(text_data='{"command": "overlay", "on": true}')
        await asyncio.sleep(2.5)  # longer than the key's life: refreshed meanwhile
        kept = bool(client.exists(key))
        await socket.disconnect()
        await asyncio.sleep(1.5)
        return kept, bool(client.exists(key))

    kept, after_leaving = run_scenario(scenario())
    assert kept and not after_leaving


def sign_out_elsewhere(session: SessionBase) -> None:
    """The session ends, as a sign-out in the browser ends it."""
    session.delete()


@pytest.mark.parametrize(
    ("revoke", "expected"),
    [("sign-out", CLOSE_UNAUTHENTICATED), ("staff demotion", CLOSE_FORBIDDEN)],
)
def test_a_stop_from_a_viewer_who_lost_access_is_refused_at_once(
    user: object,
    other_user: object,
    monkeypatch: pytest.MonkeyPatch,
    revoke: str,
    expected: int,
) -> None:
    from visualizer import consumers

    # No periodic check in time: the command itself must find that access is gone.
    monkeypatch.setattr(consumers, "ACCESS_RECHECK_SECONDS", 60)
    other_user.is_staff = True
    other_user.save()
    run = services.run_create(owner=user, name="not yours to stop")  # private, queued

    async def scenario() -> dict:
        socket, snapshot = await connect(other_user, f"/ws/runs/{run.pk}/")
        assert snapshot["run"]["can_stop"] is True
        if revoke == "sign-out":
            await asyncio.to_thread(sign_out_elsewhere, socket.scope["session"])
        else:
            await asyncio.to_thread(
                type(other_user).objects.filter(pk=other_user.pk).update, is_staff=False
            )
        await socket.send_to(text_data='{"command": "stop"}')
        return await socket.receive_output(timeout=10)

    assert run_scenario(scenario()) == {"type": "websocket.close", "code": expected}
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED, "the stop went through"


def test_commands_past_the_rate_limit_get_an_error_and_are_ignored(user: object) -> None:
    from visualizer.consumers import MAX_COMMANDS_PER_SECOND

    run = services.run_create(owner=user, name="pressed")
    burst = 2 * MAX_COMMANDS_PER_SECOND

    async def scenario() -> tuple[list[str], dict]:
        socket, _ = await connect(user, f"/ws/runs/{run.pk}/")
        try:
            for _ in range(burst):
                await socket.send_to(text_data='{"command": "dance"}')
            replies = [(await socket.receive_json_from(timeout=10))["error"] for _ in range(burst)]
            await asyncio.sleep(1.0)  # the budget refills: commands are done again
            await socket.send_to(text_data='{"command": "dance"}')
            return replies, await socket.receive_json_from(timeout=10)
        finally:
            await socket.disconnect()

    replies, later = run_scenario(scenario())
    done = [reply for reply in replies if "unknown command" in reply]
    ignored = [reply for reply in replies if "too many commands" in reply]
    # A burst of the limit is done (the budget refills a little while they are sent).
    assert MAX_COMMANDS_PER_SECOND <= len(done) < burst
    assert len(done) + len(ignored) == burst
    assert "unknown command" in later["error"]
