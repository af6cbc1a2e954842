"""A worker owns its run by task id: a reaped run stops writing, a stop that is not
honoured is enforced, and a queued run the broker lost is sent again. Real workers,
real Redis."""

import json
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.db.models.functions import Now
from django.test import Client

from tests.faults.waiting import last_episode, status_of, wait_for
from tests.stack_tasks import HANG_MESSAGE, train_then_hang
from tetris_site import stack
from trainer import queues, services
from trainer.models import Checkpoint, Run
from trainer.tasks import train_run

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

FAST = {"checkpoint_every_s": 1, "frames_per_second": 0, "max_minutes": 5}


def written(run_id: int) -> tuple:
    """What the run's workers have written so far."""
    run = Run.objects.get(pk=run_id)
    checkpoints = Checkpoint.objects.filter(run_id=run_id).count()
    return last_episode(run_id), checkpoints, run.episodes, run.status, run.error


def test_a_run_reaped_while_its_worker_lives_stops_and_one_worker_trains_it_after_resume(
    celery_worker: stack.Service, stack_dir: Path, user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = services.run_create(owner=user, name="zombie", config=FAST)
    train_run.apply_async((run.pk,))
    wait_for(lambda: status_of(run.pk) == "running", 120, "the worker to take the run")
    wait_for(lambda: Checkpoint.objects.filter(run=run).exists(), 60, "a checkpoint")
    first_task = Run.objects.get(pk=run.pk).task_id

    # The sweep finds the heartbeat stale (a laptop suspended, a database outage), and its
    # broadcast to kill the task is lost: only the worker's own check can stop it.
    monkeypatch.setattr(queues, "terminate", lambda task_id: None)
    with transaction.atomic():
        Run.objects.filter(pk=run.pk).update(heartbeat_at=Now() - timedelta(minutes=5))
        assert services.run_reap() == [run.pk]
    log = stack_dir / "worker.log"
    wait_for(
        lambda: f"run {run.pk}: stopped training, writing nothing more" in log.read_text(),
        5,
        "the reaped worker to stop within 5 s",
    )
    after_reap = written(run.pk)
    assert after_reap[3] == "failed" and after_reap[4].startswith("worker lost")
    time.sleep(2)
    assert written(run.pk) == after_reap  # not one metric, checkpoint or summary since

    last_before_resume = Checkpoint.objects.filter(run=run).order_by("-pk").first().pk
    services.run_resume(run=Run.objects.get(pk=run.pk), user=user)
    wait_for(lambda: status_of(run.pk) == "running", 60, "the resumed run to start")
    second_task = Run.objects.get(pk=run.pk).task_id
    assert second_task != first_task
    wait_for(lambda: last_episode(run.pk) > after_reap[0], 60, "training to continue")
    services.run_stop(run=Run.objects.get(pk=run.pk), user=user)
    wait_for(lambda: status_of(run.pk) == "stopped", 30, "the stop")
    # Every checkpoint listed since the resume is the new attempt's, in its own folder.
    newer = Checkpoint.objects.filter(run=run, pk__gt=last_before_resume)
    assert newer.exists()
    assert all(f"/{second_task}/" in c.file.name for c in newer)


def test_a_hung_loop_that_is_asked_to_stop_is_ended_and_its_worker_takes_the_next_run(
    stack_env: dict, stack_dir: Path, user: object
) -> None:
    timeout = 4  # RUN_STOP_TIMEOUT_SECONDS; 30 by default, shorter to keep the test short
    log = stack_dir / "hang.log"
    worker = stack.start_worker(
        {**stack_env, "RUN_STOP_TIMEOUT_SECONDS": str(timeout), "SWEEP_SECONDS": "1"},
        name="hang",
        queues="hang",
        log_path=log,
        extra_args=["--include", "tests.stack_tasks"],
    )
    try:
        run = services.run_create(owner=user, name="hangs", config=FAST)
        train_then_hang.apply_async((run.pk,), queue="hang")
        wait_for(lambda: HANG_MESSAGE % run.pk in log.read_text(), 120, "the loop to hang")

        asked = time.monotonic()
        services.run_stop(run=Run.objects.get(pk=run.pk), user=user)
        wait_for(lambda: status_of(run.pk) != "stopping", timeout + 20, "the run to end")
        took = time.monotonic() - asked
        # The timeout, then at most one sweep period and the kill.
        assert timeout <= took < timeout + 5, took
        run.refresh_from_db()
        assert run.status == "stopped", run.error
        assert run.error.startswith(f"did not stop within {timeout} s of the request")

        # The pool replaced the killed process: the worker takes the next run.
        following = services.run_create(owner=user, name="next", config=FAST)
        train_run.apply_async((following.pk,), queue="hang")
        wait_for(lambda: status_of(following.pk) == "running", 60, "the next run to start")
        assert Run.objects.get(pk=following.pk).worker == worker.extra["hostname"]
        services.run_stop(run=Run.objects.get(pk=following.pk), user=user)
        wait_for(lambda: status_of(following.pk) == "stopped", 30, "the next run to stop")
    finally:
        worker.stop(grace=10)


def test_a_queued_run_whose_message_was_lost_is_sent_again(
    celery_worker: stack.Service, user: object
) -> None:
    # A worker took the message and died before it marked the run running: the run is
    # queued, and its task is in no queue. (Queued 60 s ago: past RUN_REQUEUE_AFTER_SECONDS.)
    run = services.run_create(owner=user, name="lost message", config=FAST)
    Run.objects.filter(pk=run.pk).update(
        task_id=str(uuid.uuid4()), queued_at=Now() - timedelta(minutes=1)
    )
    wait_for(lambda: status_of(run.pk) == "running", 30, "the sweep to send the run again")
    services.run_stop(run=Run.objects.get(pk=run.pk), user=user)
    wait_for(lambda: status_of(run.pk) == "stopped", 30, "the stop")


def test_redis_killed_as_a_run_is_created_leaves_no_run_stuck_queued(
    redis_server: stack.Service, celery_worker: stack.Service, client: Client, user: object
) -> None:
    client.force_login(user)

    def create(name: str) -> object:
        body = {"name": name, "preset": "quick", "config": FAST}
        return client.post("/api/runs/", json.dumps(body), content_type="application/json")

    # Redis dies 100 ms after a run is created; it comes back without its data.
    created = create("just before")
    assert created.status_code == 201, created.content
    run_id = created.json()["id"]
    time.sleep(0.1)
    redis_server.kill()
    if redis_server.log is not None:
        redis_server.log.close()

    # While it is down: a clear 503, and no run left behind.
    runs_before = Run.objects.count()
    refused = create("while down")
    assert refused.status_code == 503, refused.content
    assert "unavailable" in refused.json()["error"]
    assert Run.objects.count() == runs_before

    # Its append-only file goes too: whatever the message's fate, the run must not stay queued.
    for leftover in list(Path(redis_server.extra["data_dir"]).rglob("appendonly*")):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    again = stack.start_redis(
        redis_server.extra["data_dir"],
        port=redis_server.extra["port"],
        log_path=redis_server.extra["log_path"],
    )
    redis_server.process, redis_server.log = again.process, again.log
    # As if RUN_REQUEUE_AFTER_SECONDS had passed since it was queued.
    Run.objects.filter(pk=run_id, status="queued").update(queued_at=Now() - timedelta(minutes=1))
    wait_for(lambda: status_of(run_id) != "queued", 30, "the run to leave the queue")
    assert status_of(run_id) == "running"
    services.run_stop(run=Run.objects.get(pk=run_id), user=user)
    wait_for(lambda: status_of(run_id) == "stopped", 30, "the stop")
