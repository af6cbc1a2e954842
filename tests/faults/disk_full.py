"""Loaded into a real worker with `--include tests.faults.disk_full`: after
FAULT_CHECKPOINTS_BEFORE_ENOSPC good checkpoints, every checkpoint write fails half-way
with ENOSPC, as on a full disk. Everything else in the worker is untouched."""

import errno
import os

import torch

from trainer.rl import checkpoint

_good_saves_left = int(os.environ.get("FAULT_CHECKPOINTS_BEFORE_ENOSPC", "-1"))


class _DiskFillsUp:
    """Stands in for the `torch` name inside trainer.rl.checkpoint only."""

    def __getattr__(self, name: str) -> object:
        return getattr(torch, name)

    def save(self, obj: object, file: object) -> None:
        global _good_saves_left
        if _good_saves_left == 0:
            file.write(b"\0" * 4096)  # a partial write, then the disk is full
            # Naming the file, as an error from opening one does: a path of the server.
            name = os.readlink(f"/proc/self/fd/{file.fileno()}")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
        _good_saves_left -= 1
        torch.save(obj, file)


if _good_saves_left >= 0:
    checkpoint.torch = _DiskFillsUp()
