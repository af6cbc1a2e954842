"""Checkpoint files: atomic replacement, and nothing half-written left behind."""

from pathlib import Path

import pytest
import torch

from trainer.rl.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint


def test_checkpoint_round_trips_tensors_and_plain_data(tmp_path: Path) -> None:
    payload = {"weights": torch.arange(4.0), "config": {"lr": 0.001}, "episodes": 7}
    path = save_checkpoint(payload, tmp_path / "run" / "checkpoint.pt")
    loaded = load_checkpoint(tmp_path / "run")
    assert torch.equal(loaded["weights"], payload["weights"])
    assert loaded["config"] == {"lr": 0.001} and loaded["episodes"] == 7
    assert checkpoint_path(tmp_path / "run") == path


def test_failed_write_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint({"episodes": 1}, tmp_path / "checkpoint.pt")
    good = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails mid-write
        save_checkpoint({"episodes": 2, "unpicklable": lambda: None}, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path)
