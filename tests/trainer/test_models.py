"""Run status changes follow DESIGN.md's state machine, atomically."""

import pytest

from trainer.models import InvalidTransition, Run

pytestmark = pytest.mark.django_db


def make_run(owner: object, status: str = Run.Status.QUEUED) -> Run:
    return Run.objects.create(
        owner=owner, name="r", algorithm="dqn", config={}, seed=1, status=status
    )


def test_a_run_goes_queued_running_stopping_stopped(user: object) -> None:
    run = make_run(user)
    run.mark_running(worker="w1")
    run.request_stop()
    assert Run.objects.get(pk=run.pk).status == Run.Status.STOPPING
    run.mark_stopped()
    assert Run.objects.get(pk=run.pk).status == Run.Status.STOPPED
    assert run.finished_at is not None


def test_stopping_a_queued_run_stops_it_at_once(user: object) -> None:
    run = make_run(user)
    run.request_stop()
    assert run.status == Run.Status.STOPPED


def test_resume_takes_stopped_or_failed_back_to_queued_but_not_finished(user: object) -> None:
    for ended in (Run.Status.STOPPED, Run.Status.FAILED):
        run = make_run(user, ended)
        run.requeue(task_id="t")
        assert Run.objects.get(pk=run.pk).status == Run.Status.QUEUED
    finished = make_run(user, Run.Status.FINISHED)
    with pytest.raises(InvalidTransition, match="finished to queued"):
        finished.requeue(task_id="t")


def test_a_run_is_taken_by_one_worker_only(user: object) -> None:
    run = make_run(user)
    stale_copy = Run.objects.get(pk=run.pk)
    run.mark_running(worker="w1")
    with pytest.raises(InvalidTransition):
        stale_copy.mark_running(worker="w2")
    assert Run.objects.get(pk=run.pk).worker == "w1"


def test_failed_keeps_the_reason(user: object) -> None:
    run = make_run(user, Run.Status.RUNNING)
    run.mark_failed("worker lost")
    assert Run.objects.get(pk=run.pk).error == "worker lost"
