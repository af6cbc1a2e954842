"""Checkpoints kept in the database: no host needs another's disk (CHECKPOINT_STORAGE)."""

import io
import os
import shutil
from pathlib import Path

import pytest
import torch
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.test import Client, override_settings

from tests.trained_runs import finished_cem_run
from trainer import checkpoint_files, services
from trainer.models import Checkpoint, Run, StoredFile, StoredFileChunk
from trainer.player import load_play_policy
from trainer.plays import PlaySpec
from trainer.rl.events import CheckpointInfo
from trainer.runner import run_execute
from trainer.storage import CHUNK_BYTES, DatabaseStorage

pytestmark = pytest.mark.django_db

IN_DATABASE = {
    **settings.STORAGES,
    "checkpoints": {"BACKEND": "trainer.storage.DatabaseStorage"},
}


def host(folder: Path) -> override_settings:
    """Settings of a host with its own DATA_DIR and MEDIA_ROOT, checkpoints in the database."""
    return override_settings(STORAGES=IN_DATABASE, DATA_DIR=folder, MEDIA_ROOT=folder / "media")


def test_a_file_goes_in_whole_in_chunks_and_comes_back_piece_by_piece() -> None:
    storage = DatabaseStorage()
    payload = os.urandom(2 * CHUNK_BYTES + 123)
    name = storage.save("runs/7/episode-000000001.pt", ContentFile(payload))
    assert name == "runs/7/episode-000000001.pt"
    assert StoredFileChunk.objects.filter(file__name=name).count() == 3
    with storage.open(name) as handle:
        assert handle.read() == payload
    with storage.open(name) as handle:
        handle.seek(CHUNK_BYTES - 5)
        assert handle.read(10) == payload[CHUNK_BYTES - 5 : CHUNK_BYTES + 5]
        handle.seek(-3, io.SEEK_END)
        assert handle.read() == payload[-3:]
    assert storage.size(name) == len(payload) and storage.exists(name)
    assert storage.listdir("runs") == (["7"], [])
    assert storage.listdir("runs/7") == ([], ["episode-000000001.pt"])
    again = storage.save(name, ContentFile(b"other"))
    assert again != name and storage.open(name).read() == payload  # never overwritten
    storage.delete(name)
    assert not storage.exists(name) and not StoredFileChunk.objects.filter(file__name=name)
    with pytest.raises(FileNotFoundError):
        storage.open(name)


def test_a_run_trained_on_one_host_is_downloaded_played_evaluated_and_resumed_on_another(
    user: object, tmp_path: Path, client: Client
) -> None:
    with host(tmp_path / "b"):
        run = finished_cem_run(user)
        checkpoints = list(Checkpoint.objects.filter(run=run))
        assert checkpoints and {c.kind for c in checkpoints} == {"latest"}
        stored = {f.name: f.size for f in StoredFile.objects.all()}
        assert stored == {c.file.name: c.size_bytes for c in checkpoints}
        # Only the learner's scratch files stay on host B: its listed versions are in the
        # database, and B's whole disk goes now.
        left = [p for p in services.run_media_dir(run.pk).rglob("*") if p.is_file()]
        assert [p.name for p in left] == ["checkpoint.pt"]
    shutil.rmtree(tmp_path / "b")

    with host(tmp_path / "a"):
        latest = Checkpoint.objects.filter(run=run, kind="latest").order_by("-episode").first()
        client.force_login(user)
        response = client.get(f"/runs/{run.pk}/checkpoints/{latest.pk}/download")
        assert response.status_code == 200
        downloaded = b"".join(response.streaming_content)
        assert len(downloaded) == latest.size_bytes
        assert torch.load(io.BytesIO(downloaded), weights_only=False)["format"] == 1

        spec = PlaySpec("token", user.pk, "latest", 10, 20, "uniform", 1, 10, run.pk, latest.pk)
        assert load_play_policy(spec) is not None
        copy = checkpoint_files.local_path(latest)
        assert copy.parent == tmp_path / "a" / "cache" / "checkpoints"

        out = io.StringIO()
        call_command("evaluate", str(run.pk), "--here", "--games", "2", "--json", stdout=out)
        assert '"games": 2' in out.getvalue()

        Run.objects.filter(pk=run.pk).update(
            status=Run.Status.STOPPED, config={**run.config, "max_episodes": 200}
        )
        run.refresh_from_db()
        services.run_resume(run=run, user=user)
        run_execute(run_id=run.pk, worker="host a")
        run.refresh_from_db()
        assert run.status == Run.Status.FINISHED, run.error
        assert run.episodes == 200
        fetched = checkpoint_files.cache_dir() / f"{latest.pk}-{Path(latest.file.name).name}"
        assert fetched.is_file()  # resumed from B's checkpoint, fetched from the database


def test_pruned_checkpoints_and_deleted_runs_take_their_stored_files(
    user: object, tmp_path: Path, django_capture_on_commit_callbacks: object
) -> None:
    with host(tmp_path / "b"):
        run = services.run_create(owner=user, name="pruned")
        latest = services.run_media_dir(run.pk) / "checkpoint.pt"
        latest.parent.mkdir(parents=True)
        for episode in range(1, services.CHECKPOINTS_KEPT + 3):
            latest.write_bytes(f"version {episode}".encode())
            info = CheckpointInfo(latest, episode=episode, total_pieces=episode, wall_time=0.0)
            services.run_record_checkpoint(run_id=run.pk, info=info, wall_time=0.0)
        listed = {c.file.name for c in Checkpoint.objects.filter(run=run)}
        assert len(listed) == services.CHECKPOINTS_KEPT
        assert set(StoredFile.objects.values_list("name", flat=True)) == listed
        newest = Checkpoint.objects.filter(run=run).order_by("-episode").first()
        assert newest.file.open("rb").read() == f"version {services.CHECKPOINTS_KEPT + 2}".encode()
        Run.objects.filter(pk=run.pk).update(status=Run.Status.STOPPED)
        with django_capture_on_commit_callbacks(execute=True):
            services.run_delete(run=Run.objects.get(pk=run.pk), user=user)
        assert not StoredFile.objects.exists() and not StoredFileChunk.objects.exists()
