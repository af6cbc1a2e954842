"""Runs on a real Celery worker against a real Redis: start, stop, resume, duplicate
deliveries, and a worker killed with SIGKILL mid-run."""

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client

from tests.faults.waiting import last_episode, status_of, wait_for
from tetris_site import stack
from trainer import services
from trainer.models import Checkpoint, Run
from trainer.tasks import train_run

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# Small, fast runs: frequent checkpoints, no frames needed here.
FAST = {"checkpoint_every_s": 1, "frames_per_second": 0, "max_minutes": 5}


def test_api_start_stop_resume_on_a_real_worker(
    celery_worker: stack.Service, client: Client, user: object
) -> None:
    client.force_login(user)
    response = client.post(
        "/api/runs/",
        json.dumps({"name": "worker run", "preset": "quick", "config": FAST}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    wait_for(lambda: status_of(run_id) == "running", 120, "the worker to take the run")
    wait_for(lambda: last_episode(run_id) > 0, 120, "metrics in the database")

    asked = time.monotonic()
    assert client.post(f"/api/runs/{run_id}/stop").json()["status"] == "stopping"
    wait_for(lambda: status_of(run_id) == "stopped", 30, "the run to stop")
    assert time.monotonic() - asked < 10
    checkpoint = Checkpoint.objects.filter(run_id=run_id).first()
    assert checkpoint is not None and Path(checkpoint.file.path).is_file()
    before = last_episode(run_id)

    assert client.post(f"/api/runs/{run_id}/resume").json()["status"] == "queued"
    wait_for(lambda: status_of(run_id) == "running", 60, "the resumed run to start")
    wait_for(lambda: last_episode(run_id) > before, 120, "new episodes after resume")
    client.post(f"/api/runs/{run_id}/stop")
    wait_for(lambda: status_of(run_id) == "stopped", 30, "the run to stop again")
    run = Run.objects.get(pk=run_id)
    assert run.episodes >= before and run.error == ""


def test_a_duplicate_delivery_is_ignored(
    celery_worker: stack.Service, user: object, stack_dir: Path
) -> None:
    run = services.run_create(owner=user, name="twice", config=FAST)
    train_run.apply_async((run.pk,), task_id="first-delivery")
    train_run.apply_async((run.pk,), task_id="second-delivery")
    wait_for(lambda: status_of(run.pk) == "running", 120, "the first delivery")
    wait_for(lambda: last_episode(run.pk) > 0, 120, "metrics")
    services.run_stop(run=Run.objects.get(pk=run.pk), user=user)
    wait_for(lambda: status_of(run.pk) == "stopped", 30, "the stop")
    # The second delivery reaches the (one-process) worker after the first ends; it must
    # find the run stopped and leave it so.
    log = stack_dir / "worker.log"
    wait_for(
        lambda: f"run {run.pk} is not queued" in log.read_text(), 30, "the duplicate to be seen"
    )
    assert status_of(run.pk) == "stopped"


def test_a_killed_workers_run_is_failed_kept_and_resumable(
    celery_worker: stack.Service, stack_env: dict, stack_dir: Path, user: object
) -> None:
    doomed = stack.start_worker(
        stack_env,
        name="doomed",
        queues="doomed",
        log_path=stack_dir / "doomed.log",
    )
    try:
        run = services.run_create(owner=user, name="crash", config=FAST)
        train_run.apply_async((run.pk,), queue="doomed")
        wait_for(lambda: status_of(run.pk) == "running", 120, "the doomed worker to start")
        wait_for(lambda: Checkpoint.objects.filter(run=run).exists(), 120, "a checkpoint")
        wait_for(lambda: last_episode(run.pk) > 0, 120, "metrics")
    finally:
        # The machine dies: the worker and its pool get SIGKILL, nothing runs a handler.
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait()
    episodes_written = last_episode(run.pk)
    checkpoint = Checkpoint.objects.filter(run=run).order_by("-episode").first()
    checkpoint_bytes = Path(checkpoint.file.path).read_bytes()

    time.sleep(2.5)
    assert services.run_reap(stale_after=timedelta(seconds=2)) == [run.pk]
    run.refresh_from_db()
    assert run.status == "failed" and run.error.startswith("worker lost")
    assert last_episode(run.pk) == episodes_written
    assert Path(checkpoint.file.path).read_bytes() == checkpoint_bytes

    services.run_resume(run=run, user=user)
    wait_for(lambda: status_of(run.pk) == "running", 120, "the resumed run on the other worker")
    wait_for(lambda: last_episode(run.pk) > episodes_written, 120, "training to continue")
    services.run_stop(run=Run.objects.get(pk=run.pk), user=user)
    wait_for(lambda: status_of(run.pk) == "stopped", 30, "the stop")
    assert Run.objects.get(pk=run.pk).worker == celery_worker.extra["hostname"]
