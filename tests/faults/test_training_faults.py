"""Faults inside training on a real worker: a full disk while a checkpoint is written,
and a loss that turns NaN. Both end the run failed with a readable reason and keep the
last good checkpoint, and the run resumes from it."""

from pathlib import Path

import pytest
import torch

from tests.faults.waiting import last_episode, status_of, wait_for
from tetris_site import stack
from trainer import services
from trainer.models import Checkpoint, Run
from trainer.tasks import train_run

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

FAST = {"checkpoint_every_s": 1, "frames_per_second": 0, "max_minutes": 5}


def checkpoint_files(run: Run) -> list[Path]:
    return sorted(Path(services.run_media_dir(run.pk)).glob("*.pt"))


def test_full_disk_during_a_checkpoint_fails_the_run_and_keeps_the_last_good_one(
    celery_worker: stack.Service, stack_env: dict, stack_dir: Path, user: object
) -> None:
    env = {**stack_env, "FAULT_CHECKPOINTS_BEFORE_ENOSPC": "2"}
    worker = stack.start_worker(
        env,
        name="diskfull",
        queues="diskfull",
        log_path=stack_dir / "diskfull.log",
        extra_args=["--include", "tests.faults.disk_full"],
    )
    try:
        run = services.run_create(owner=user, name="full disk", config=FAST)
        train_run.apply_async((run.pk,), queue="diskfull")
        wait_for(lambda: status_of(run.pk) == "failed", 180, "the checkpoint write to fail")
    finally:
        worker.stop(grace=5)
    run.refresh_from_db()
    assert "No space left on device" in run.error
    # Viewers (public runs' too) read the error: it names no folder of the server.
    assert str(stack_dir) not in run.error and "/" not in run.error.replace("…/", ""), run.error
    good = Checkpoint.objects.filter(run=run)
    assert good.count() == 2
    newest = good.order_by("-episode").first()
    # The last good checkpoint is whole and loadable; no temp file was left behind.
    payload = torch.load(newest.file.path, map_location="cpu", weights_only=True)
    assert payload["progress"]["episodes"] == newest.episode
    assert not [p for p in Path(newest.file.path).parent.iterdir() if p.name.startswith(".")]
    episodes_before = last_episode(run.pk)

    services.run_resume(run=run, user=user)
    wait_for(lambda: status_of(run.pk) == "running", 120, "the resumed run")
    wait_for(lambda: last_episode(run.pk) > episodes_before, 120, "training to continue")
    services.run_stop(run=Run.objects.get(pk=run.pk), user=user)
    wait_for(lambda: status_of(run.pk) == "stopped", 30, "the stop")
    assert Checkpoint.objects.filter(run=run).count() > 2


def test_nan_loss_fails_the_run_readably_and_keeps_the_last_good_checkpoint(
    celery_worker: stack.Service, user: object
) -> None:
    config = {**FAST, "inject_nan_at_update": 1500}
    run = services.run_create_and_start(owner=user, name="diverges", config=config)
    wait_for(lambda: status_of(run.pk) in {"failed", "finished"}, 240, "the NaN")
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith("training diverged")
    assert "nan" in run.error.lower()
    checkpoint = Checkpoint.objects.filter(run=run).order_by("-episode").first()
    assert checkpoint is not None, "a checkpoint should have been written before the NaN"
    payload = torch.load(checkpoint.file.path, map_location="cpu", weights_only=True)
    weights = _tensors(payload["state"])
    assert weights and all(torch.isfinite(w).all() for w in weights)


def _tensors(tree: object) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree] if tree.is_floating_point() else []
    if isinstance(tree, dict):
        return [t for v in tree.values() for t in _tensors(v)]
    if isinstance(tree, list | tuple):
        return [t for v in tree for t in _tensors(v)]
    return []
