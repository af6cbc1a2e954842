"""Run pages that are not the viewer: checkpoint downloads."""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest

from trainer import selectors
from trainer.exporting import streamed
from trainer.models import Checkpoint
from trainer.storage import CHUNK_BYTES


class CheckpointFileResponse(FileResponse):
    """A checkpoint file, read a stored chunk at a time (one query of a database-kept
    file; under ASGI one hop to the request's thread) rather than FileResponse's 4 KiB."""

    block_size = CHUNK_BYTES


def checkpoint_download(request: HttpRequest, run_id: int, checkpoint_id: int) -> FileResponse:
    """A checkpoint file of a run the user may see."""
    try:
        run = selectors.run_for_viewer(request.user, run_id)
    except selectors.RunNotFound:
        raise Http404("run not found") from None
    checkpoint = Checkpoint.objects.filter(run=run, pk=checkpoint_id).first()
    if checkpoint is None:
        raise Http404("checkpoint not found")
    try:
        handle = checkpoint.file.open("rb")
    except FileNotFoundError:
        raise Http404("checkpoint file is gone") from None
    name = f"run-{run.pk}-episode-{checkpoint.episode}.pt"
    return streamed(request, CheckpointFileResponse(handle, as_attachment=True, filename=name))
