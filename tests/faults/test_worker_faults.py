"""Several workers: a run is never trained twice at once, a second worker picks up new
runs while the first is busy or dead, and a run that outlives the broker's visibility
timeout is not delivered again."""

import os
import re
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from tests.faults.waiting import last_episode, status_of, wait_for
from tetris_site import stack
from trainer import services
from trainer.lease import HEARTBEAT_SECONDS
from trainer.models import Run
from trainer.tasks import train_run

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

FAST = {"checkpoint_every_s": 1, "frames_per_second": 0, "max_minutes": 5}


def deliveries(log: Path, task_id: str) -> int:
    """How many times a worker's log shows the task received."""
    return len(
        re.findall(rf"Task trainer\.tasks\.train_run\[{task_id}\] received", log.read_text())
    )


def test_two_workers_share_runs_and_a_dead_ones_run_is_never_trained_twice(
    stack_env: dict, stack_dir: Path, user: object
) -> None:
    logs = [stack_dir / "pair-a.log", stack_dir / "pair-b.log"]
    workers = stack.start_workers(
        stack_env,
        [
            {"name": f"pair-{n}", "queues": "pair", "log_path": log}
            for n, log in zip("ab", logs, strict=True)
        ],
    )
    try:
        first = services.run_create(owner=user, name="first", config=FAST)
        _start_on("pair", first)
        wait_for(lambda: status_of(first.pk) == "running", 120, "the first run to start")
        second = services.run_create(owner=user, name="second", config=FAST)
        _start_on("pair", second)
        # The busy worker reserved nothing: the idle one takes the new run at once.
        wait_for(lambda: status_of(second.pk) == "running", 60, "the second run to start")
        first.refresh_from_db()
        second.refresh_from_db()
        assert first.worker != second.worker

        victim = next(w for w in workers if w.extra["hostname"] == first.worker)
        survivor = next(w for w in workers if w is not victim)
        wait_for(lambda: last_episode(first.pk) > 0, 120, "the first run's metrics")
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait()
        # Past a heartbeat period: the live run's lease has beaten meanwhile, the dead one's not.
        stale_after = HEARTBEAT_SECONDS + 1
        time.sleep(stale_after + 0.5)
        assert services.run_reap(stale_after=timedelta(seconds=stale_after)) == [first.pk]

        # A third run goes to the survivor once it is free; the dead run is never picked
        # up again by anyone, and nobody else trained it meanwhile.
        services.run_stop(run=Run.objects.get(pk=second.pk), user=user)
        wait_for(lambda: status_of(second.pk) == "stopped", 30, "the second run to stop")
        third = services.run_create(owner=user, name="third", config=FAST)
        _start_on("pair", third)
        wait_for(lambda: status_of(third.pk) == "running", 60, "the third run to start")
        assert Run.objects.get(pk=third.pk).worker == survivor.extra["hostname"]
        assert status_of(first.pk) == "failed"
        for run in (first, second):
            assert sum(deliveries(log, run.task_id) for log in logs) == 1
        services.run_stop(run=Run.objects.get(pk=third.pk), user=user)
        wait_for(lambda: status_of(third.pk) == "stopped", 30, "the third run to stop")
    finally:
        for worker in workers:
            worker.stop(grace=10)


def test_a_run_outliving_the_visibility_timeout_is_not_delivered_again(
    stack_env: dict, stack_dir: Path, user: object
) -> None:
    env = {**stack_env, "BROKER_VISIBILITY_TIMEOUT": "2"}
    logs = [stack_dir / "vt-a.log", stack_dir / "vt-b.log"]
    workers = stack.start_workers(
        env,
        [
            {
                "name": f"vt-{n}",
                "queues": "vt",
                "log_path": log,
                "extra_args": ["--include", "tests.faults.fast_restore"],
            }
            for n, log in zip("ab", logs, strict=True)
        ],
    )
    try:
        run = services.run_create(owner=user, name="long", config=FAST)
        _start_on("vt", run)
        wait_for(lambda: status_of(run.pk) == "running", 120, "the run to start")
        started_at = Run.objects.get(pk=run.pk).started_at
        time.sleep(6)  # three visibility timeouts
        assert sum(deliveries(log, run.task_id) for log in logs) == 1
        assert Run.objects.get(pk=run.pk).started_at == started_at
        services.run_stop(run=Run.objects.get(pk=run.pk), user=user)
        wait_for(lambda: status_of(run.pk) == "stopped", 30, "the stop")
    finally:
        for worker in workers:
            worker.stop(grace=10)


def _start_on(queue: str, run: Run) -> None:
    """Enqueue the run on this test's own queue, so the session's worker stays out of it."""
    run.task_id = str(uuid.uuid4())
    run.save(update_fields=["task_id"])
    train_run.apply_async((run.pk,), task_id=run.task_id, queue=queue)
