"""Checkpoint files between a host's disk and the checkpoint storage.

Training writes checkpoints to the worker's own folder (`services.run_media_dir`). With
file storage (the default) that folder is under MEDIA_ROOT and a snapshot is listed where
it lies. With any other storage (`CHECKPOINT_STORAGE=database`) the snapshot is copied
into it and removed here; a host that resumes, evaluates or plays a checkpoint fetches a
copy into DATA_DIR/cache/checkpoints, so no host needs another's disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage

from trainer.models import Checkpoint
from trainer.storage import configured_checkpoint_storage

# Fetched copies a host keeps; the least recently written go first.
CACHED_COPIES = 50


def store(snapshot: Path) -> str:
    """Keep a snapshot under MEDIA_ROOT in the checkpoint storage; the name it is listed by."""
    storage = configured_checkpoint_storage()
    name = snapshot.relative_to(Path(settings.MEDIA_ROOT)).as_posix()
    if isinstance(storage, FileSystemStorage):
        return name
    with snapshot.open("rb") as handle:
        name = storage.save(name, File(handle))
    snapshot.unlink(missing_ok=True)
    return name


def local_path(checkpoint: Checkpoint) -> Path:
    """A file on this host with the checkpoint's bytes; FileNotFoundError if it is gone."""
    field = checkpoint.file
    if isinstance(configured_checkpoint_storage(), FileSystemStorage):
        return Path(field.path)
    copy = cache_dir() / f"{checkpoint.pk}-{Path(field.name).name}"
    if copy.is_file():
        return copy
    copy.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{copy.name}.", dir=copy.parent)
    try:
        with os.fdopen(descriptor, "wb") as out, field.storage.open(field.name, "rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)
        os.replace(temp_name, copy)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    prune_cache()
    return copy


def delete(checkpoint: Checkpoint) -> None:
    """Remove a checkpoint's file from the storage (nothing if it is already gone)."""
    checkpoint.file.storage.delete(checkpoint.file.name)


def cache_dir() -> Path:
    """This host's fetched checkpoint copies."""
    return Path(settings.DATA_DIR) / "cache" / "checkpoints"


def prune_cache(keep: int = CACHED_COPIES) -> None:
    """Drop all but the `keep` newest copies."""
    copies = sorted(
        (p for p in cache_dir().glob("*.pt") if p.is_file()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in copies[keep:]:
        old.unlink(missing_ok=True)
