"""Checkpoint files: written whole or not at all, so the last good one always survives."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "checkpoint.pt"
# The best-evaluated greedy policy of a run, beside its latest checkpoint: a policy only,
# with no learner state, so it is played and evaluated but never resumed from.
BEST_CHECKPOINT_NAME = "best.pt"
FORMAT_VERSION = 1


def checkpoint_path(path: str | Path) -> Path:
    """The checkpoint file named by `path`: the file itself, or the checkpoint inside a folder."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() or not path.suffix else path


def policy_checkpoint_path(path: str | Path) -> Path:
    """The checkpoint a policy is played from: a folder's best-evaluated one, if it has one."""
    path = Path(path)
    if path.is_dir() and (path / BEST_CHECKPOINT_NAME).is_file():
        return path / BEST_CHECKPOINT_NAME
    return checkpoint_path(path)


def save_checkpoint(payload: dict[str, Any], path: Path) -> Path:
    """Write `payload` to a temp file beside `path`, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            torch.save({"format": FORMAT_VERSION, **payload}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    # The rename itself lives in the folder; without this a power cut can still lose it.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors and plain data only)."""
    file = checkpoint_path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint at {file}")
    payload = torch.load(file, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{file}: unsupported checkpoint format {payload.get('format')!r}")
    return payload
