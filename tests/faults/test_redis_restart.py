"""Redis is killed (SIGKILL) and restarted while a run trains and two viewers watch:
training goes on, the database has every episode exactly once, viewers are back within
seconds, and a queued run is still queued."""

import asyncio
import json
import time

import pytest
from django.db.models import Count, Max, Min
from django.test import Client

from tests.faults.waiting import last_episode, status_of, wait_for
from tests.wsclient import open_socket
from tetris_site import stack
from trainer import services
from trainer.models import Metric, Run

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 3.0
BACK_WITHIN_SECONDS = 5.0


def restart_redis(service: stack.Service, down_for: float) -> float:
    """Kill Redis with SIGKILL, as a crash or the OOM killer would (no time to save
    anything: what survives is what its append-only file already holds), wait, and start
    it on the same port."""
    service.kill()
    if service.log is not None:
        service.log.close()
    time.sleep(down_for)
    again = stack.start_redis(
        service.extra["data_dir"], port=service.extra["port"], log_path=service.extra["log_path"]
    )
    service.process, service.log = again.process, again.log
    return time.time()


async def viewer(
    url: str, path: str, session: str, frames: list[dict], stop: asyncio.Event
) -> None:
    """A viewer that behaves like the browser: on any close it reconnects with backoff."""
    delay = 0.2
    while not stop.is_set():
        try:
            socket = await open_socket(url, path, session=session)
        except OSError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            continue
        delay = 0.2
        try:
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(socket.recv(), 0.5)
                except TimeoutError:
                    continue
                message = json.loads(text)
                if message["type"] == "frame":
                    frames.append({**message, "received": time.time()})
        except Exception:  # the socket closed: reconnect, as the browser does
            await asyncio.sleep(delay)
        finally:
            await socket.close()


def test_redis_restart_loses_nothing_and_viewers_come_back(
    redis_server: stack.Service,
    celery_worker: stack.Service,
    live_daphne: stack.Service,
    user: object,
) -> None:
    config = {"checkpoint_every_s": 5, "frames_per_second": 20, "max_minutes": 5}
    watched = services.run_create_and_start(owner=user, name="watched", config=config)
    wait_for(lambda: status_of(watched.pk) == "running", 120, "the run to start")
    waiting = services.run_create_and_start(owner=user, name="waiting", config=config)
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    path = f"/ws/runs/{watched.pk}/"

    async def scenario() -> tuple[float, list[list[dict]]]:
        stop = asyncio.Event()
        frames: list[list[dict]] = [[], []]
        viewers = [
            asyncio.create_task(viewer(live_daphne.url, path, session, frames[i], stop))
            for i in range(2)
        ]
        deadline = time.monotonic() + 60
        while not all(frames) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert all(frames), "both viewers should see frames before the outage"
        back_at = await asyncio.to_thread(restart_redis, redis_server, OUTAGE_SECONDS)
        await asyncio.sleep(BACK_WITHIN_SECONDS + 3)
        stop.set()
        await asyncio.gather(*viewers)
        return back_at, frames

    episodes_before = last_episode(watched.pk)
    back_at, frames = asyncio.run(scenario())

    for seen in frames:
        after = [f for f in seen if f["t"] >= back_at]
        assert after, "a viewer saw no frame after Redis came back"
        assert after[0]["received"] - back_at <= BACK_WITHIN_SECONDS
    wait_for(lambda: last_episode(watched.pk) > episodes_before + 5, 60, "training to go on")
    assert status_of(watched.pk) == "running"
    assert status_of(waiting.pk) == "queued"

    services.run_stop(run=Run.objects.get(pk=watched.pk), user=user)
    wait_for(lambda: status_of(watched.pk) == "stopped", 30, "the stop")
    stored = Metric.objects.filter(run=watched).aggregate(
        n=Count("id"), first=Min("episode"), last=Max("episode")
    )
    assert stored["first"] == 1
    assert stored["n"] == stored["last"], "episodes are missing or duplicated"

    # The run queued before the outage is still in the queue: the worker takes it now.
    wait_for(lambda: status_of(waiting.pk) == "running", 120, "the queued run to start")
    services.run_stop(run=Run.objects.get(pk=waiting.pk), user=user)
    wait_for(lambda: status_of(waiting.pk) == "stopped", 30, "the second stop")
