"""Checkpoint files kept in the database, so every host of a lab reads what any host wrote.

`CHECKPOINT_STORAGE=database` selects `DatabaseStorage` for `STORAGES["checkpoints"]`: a
file is a `StoredFile` row and its bytes are `StoredFileChunk` rows of at most
`CHUNK_BYTES`, so writing and reading a file hold one chunk in memory at a time, on
SQLite and PostgreSQL alike. The laptop default stays plain files under MEDIA_ROOT.
"""

from __future__ import annotations

import io
from typing import Any

from django.apps import apps
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.db.models import Model
from django.utils.deconstruct import deconstructible

CHUNK_BYTES = 1 << 20


def configured_checkpoint_storage() -> Storage:
    """`STORAGES["checkpoints"]` as the settings name it now."""
    return storages["checkpoints"]


@deconstructible
class CheckpointStorage(Storage):
    """The checkpoint field's storage: each call goes to `STORAGES["checkpoints"]` as it is
    then, so a changed setting (a test's override) takes effect without a restart."""

    def _open(self, name: str, mode: str = "rb") -> File:
        return configured_checkpoint_storage().open(name, mode)

    def _save(self, name: str, content: File) -> str:
        return configured_checkpoint_storage().save(name, content)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return configured_checkpoint_storage().get_available_name(name, max_length)

    def generate_filename(self, filename: str) -> str:
        return configured_checkpoint_storage().generate_filename(filename)

    def delete(self, name: str) -> None:
        configured_checkpoint_storage().delete(name)

    def exists(self, name: str) -> bool:
        return configured_checkpoint_storage().exists(name)

    def size(self, name: str) -> int:
        return configured_checkpoint_storage().size(name)

    def path(self, name: str) -> str:
        return configured_checkpoint_storage().path(name)

    def url(self, name: str) -> str:
        return configured_checkpoint_storage().url(name)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        return configured_checkpoint_storage().listdir(path)


def _model(name: str) -> type[Model]:
    # By name: trainer.models imports this module for the checkpoint field's storage.
    return apps.get_model("trainer", name)


@deconstructible
class DatabaseStorage(Storage):
    """Files as rows of the project's own database: no shared disk, no further service."""

    def _save(self, name: str, content: File) -> str:
        StoredFile, StoredFileChunk = _model("StoredFile"), _model("StoredFileChunk")
        content.seek(0)
        with transaction.atomic():
            stored = StoredFile.objects.create(name=name, size=0)
            size, index = 0, 0
            while chunk := content.read(CHUNK_BYTES):
                StoredFileChunk.objects.create(file=stored, index=index, data=bytes(chunk))
                size, index = size + len(chunk), index + 1
            StoredFile.objects.filter(pk=stored.pk).update(size=size)
        return name

    def _open(self, name: str, mode: str = "rb") -> File:
        StoredFile = _model("StoredFile")
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("database files are written whole through save(), not opened for it")
        stored = StoredFile.objects.filter(name=name).first()
        if stored is None:
            raise FileNotFoundError(f"no stored file {name!r}")
        return File(io.BufferedReader(ChunkReader(stored.pk, stored.size), CHUNK_BYTES), name)

    def exists(self, name: str) -> bool:
        StoredFile = _model("StoredFile")
        return StoredFile.objects.filter(name=name).exists()

    def delete(self, name: str) -> None:
        StoredFile = _model("StoredFile")
        StoredFile.objects.filter(name=name).delete()

    def size(self, name: str) -> int:
        StoredFile = _model("StoredFile")
        stored = StoredFile.objects.filter(name=name).first()
        if stored is None:
            raise FileNotFoundError(f"no stored file {name!r}")
        return stored.size

    def url(self, name: str) -> str:
        raise NotImplementedError("checkpoints are downloaded through their run's page")

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        StoredFile = _model("StoredFile")
        prefix = f"{path.rstrip('/')}/" if path else ""
        names = StoredFile.objects.filter(name__startswith=prefix).values_list("name", flat=True)
        rests = [name[len(prefix) :] for name in names]
        folders = sorted({rest.split("/", 1)[0] for rest in rests if "/" in rest})
        return folders, sorted(rest for rest in rests if "/" not in rest)


class ChunkReader(io.RawIOBase):
    """A stored file's bytes, read a chunk at a time as the caller asks for them."""

    def __init__(self, file_id: int, size: int) -> None:
        self.file_id = file_id
        self.size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        StoredFileChunk = _model("StoredFileChunk")
        if self.position >= self.size:
            return 0
        index, skip = divmod(self.position, CHUNK_BYTES)
        data = (
            StoredFileChunk.objects.filter(file_id=self.file_id, index=index)
            .values_list("data", flat=True)
            .first()
        )
        if data is None:
            raise OSError(f"stored file {self.file_id} lacks chunk {index}")
        piece = bytes(data)[skip : skip + len(buffer)]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)
