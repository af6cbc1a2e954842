"""Limits one run lives within on a shared installation: metric rows per second, the size
of its checkpoints and how often it writes them, its threads, and a finite budget."""

import os
import time
from pathlib import Path

import pytest
import torch

from tests.trained_runs import SHORT_CEM
from trainer import services
from trainer.lease import RunLease
from trainer.models import Metric, Run
from trainer.queues import WORKER_PROCESSES_ENV
from trainer.recording import RunRecorder
from trainer.rl.config import PRESETS, TrainConfig
from trainer.rl.events import Callback, CheckpointInfo, EpisodeMetrics
from trainer.rl.run import CHECKPOINT_TIME_FACTOR, RunContext
from trainer.runner import run_execute, within_thread_share

pytestmark = pytest.mark.django_db


def episode(n: int) -> EpisodeMetrics:
    return EpisodeMetrics(
        episode=n,
        lines=n % 7,
        score=0,
        pieces=10,
        total_pieces=10 * n,
        epsilon=0.0,
        reward=0.0,
        loss=None,
        wall_time=n / 1000,
        placements_per_second=1000.0,
    )


def test_a_run_ending_thousands_of_games_a_second_stores_a_bounded_number_of_rows(
    user: object, settings: object
) -> None:
    settings.MAX_METRIC_ROWS_PER_SECOND = 50
    run = services.run_create(owner=user, name="tiny board")
    run.mark_running(worker="here", task_id="t1")
    recorder = RunRecorder(run, RunLease(run.pk, "t1").start())
    started = time.monotonic()
    for n in range(1, 5001):
        recorder.on_episode(episode(n))
    recorder.flush()
    seconds = time.monotonic() - started
    stored = Metric.objects.filter(run=run).count()
    assert stored <= 50 * (seconds + 1) + 1, (stored, seconds)
    run.refresh_from_db()
    # The run's own figures still count every game.
    assert run.episodes == 5000 and run.best_lines == 6


def test_a_checkpoint_past_the_size_limit_fails_the_run_saying_so(
    user: object, settings: object
) -> None:
    settings.MAX_CHECKPOINT_MB = 0.001  # about a kilobyte: any checkpoint is larger
    run = services.run_create(
        owner=user, name="big", algorithm="cem", preset="record", config=SHORT_CEM
    )
    run_execute(run_id=run.pk, worker="here")
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "MAX_CHECKPOINT_MB" in run.error and "CheckpointTooLarge" in run.error
    assert not run.checkpoints.exists()


class SlowCheckpoints(Callback):
    """A checkpoint that takes 0.1 s to keep (a slow disk, a big network)."""

    def on_checkpoint(self, c: CheckpointInfo) -> None:
        time.sleep(0.1)


def test_checkpoints_that_take_long_to_write_are_written_less_often(tmp_path: Path) -> None:
    config = TrainConfig.from_preset("quick", {"checkpoint_every_s": 1})
    run = RunContext(config, [SlowCheckpoints()], lambda: False, tmp_path, None)
    started = time.monotonic()
    run.save({"weights": torch.zeros(4)}, {"kind": "test"})
    took = time.monotonic() - started
    assert took >= 0.1
    # Due after 20 times what it took (2 s here), not after checkpoint_every_s (1 s).
    time.sleep(1.2)
    assert not run.checkpoint_due()
    assert CHECKPOINT_TIME_FACTOR * took > 1.2


def test_threads_are_clamped_to_the_process_share_of_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker of as many processes as the machine has cores: one core each.
    monkeypatch.setenv(WORKER_PROCESSES_ENV, str(os.cpu_count()))
    config = TrainConfig.from_preset("quick", {"threads": 256})
    assert within_thread_share(config).threads == 1
    monkeypatch.setenv(WORKER_PROCESSES_ENV, "1")  # one process: every core
    assert within_thread_share(config).threads == os.cpu_count()
    assert within_thread_share(TrainConfig.from_preset("quick", {"threads": 1})).threads == 1


def test_every_preset_has_a_finite_budget() -> None:
    for name in PRESETS:
        config = TrainConfig.from_preset(name)
        assert config.max_minutes or config.max_episodes or config.max_pieces, name
