"""Services validate, enqueue on commit, apply the access policy, and sweep lost runs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from trainer import services
from trainer.models import InvalidTransition, Metric, Run
from trainer.rl.config import ConfigError
from trainer.selectors import NotAllowed, run_metric_points

pytestmark = pytest.mark.django_db


def test_invalid_config_names_each_field_and_creates_nothing(user: object) -> None:
    with pytest.raises(ConfigError) as caught:
        services.run_create_and_start(
            owner=user, name="", config={"lr": -1, "nonsense": 3}, visibility="secret"
        )
    assert set(caught.value.errors) >= {"name", "visibility", "nonsense"}
    assert Run.objects.count() == 0


def test_bad_preset_is_a_field_error(user: object) -> None:
    with pytest.raises(ConfigError) as caught:
        services.run_create(owner=user, name="x", preset="turbo")
    assert "preset" in caught.value.errors


def test_start_enqueues_only_after_commit(
    user: object, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        run = services.run_create_and_start(owner=user, name="first")
    assert len(callbacks) == 1
    assert run.status == Run.Status.QUEUED
    assert run.task_id
    assert run.config["algorithm"] == "dqn"


def test_only_owner_or_staff_can_stop(user: object, other_user: object) -> None:
    run = services.run_create(owner=user, name="mine")
    with pytest.raises(NotAllowed):
        services.run_stop(run=run, user=other_user)
    other_user.is_staff = True
    services.run_stop(run=run, user=other_user)
    assert run.status == Run.Status.STOPPED


def test_resume_is_for_the_owner_and_ended_runs(user: object, other_user: object) -> None:
    run = services.run_create(owner=user, name="mine")
    with pytest.raises(InvalidTransition):
        services.run_resume(run=run, user=user)
    run.request_stop()
    with pytest.raises(NotAllowed):
        services.run_resume(run=run, user=other_user)
    services.run_resume(run=run, user=user)
    assert Run.objects.get(pk=run.pk).status == Run.Status.QUEUED


def test_clone_copies_config_for_the_cloning_user(user: object, other_user: object) -> None:
    run = services.run_create(owner=user, name="mine", config={"lr": 0.0005}, visibility="public")
    clone = services.run_clone(run=run, user=other_user)
    assert clone.owner == other_user
    assert clone.config["lr"] == 0.0005
    assert clone.visibility == "private"


def test_running_runs_cannot_be_deleted(user: object) -> None:
    run = services.run_create(owner=user, name="mine")
    run.mark_running(worker="w")
    with pytest.raises(InvalidTransition, match="stop it"):
        services.run_delete(run=run, user=user)
    run.request_stop()
    run.mark_stopped()
    services.run_delete(run=run, user=user)
    assert not Run.objects.filter(pk=run.pk).exists()


def test_reap_fails_runs_with_a_stale_heartbeat_only(
    user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = []  # no worker runs these tasks; the kill is tested with real workers
    monkeypatch.setattr(services.queues, "terminate", killed.append)
    stale = services.run_create(owner=user, name="stale")
    stale.mark_running(worker="w-dead")
    Run.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    fresh = services.run_create(owner=user, name="fresh")
    fresh.mark_running(worker="w-alive")
    assert services.run_reap(stale_after=timedelta(seconds=60)) == [stale.pk]
    stale.refresh_from_db()
    assert stale.status == Run.Status.FAILED
    assert stale.error.startswith("worker lost")
    assert Run.objects.get(pk=fresh.pk).status == Run.Status.RUNNING
    assert killed == [stale.task_id]


def _metrics(run: Run, n: int) -> None:
    Metric.objects.bulk_create(
        Metric(
            run=run,
            episode=i,
            lines=i % 100 if i != 500 else 10_000,
            score=i,
            pieces=i,
            reward=0.0,
            loss=None,
            epsilon=None,
            placements_per_second=1.0,
            total_pieces=i,
            wall_time=float(i),
        )
        for i in range(1, n + 1)
    )


def test_metrics_are_downsampled_on_the_server_keeping_spikes(user: object) -> None:
    run = services.run_create(owner=user, name="m")
    _metrics(run, 3000)
    points, total = run_metric_points(run, max_points=100)
    assert total == 3000
    assert 50 <= len(points) <= 100
    assert max(p["lines_max"] for p in points) == 10_000
    full, _ = run_metric_points(run, max_points=5000)
    assert len(full) == 3000
    assert full[0]["episode"] == 1
