"""Plays one chunk of a requested evaluation in this worker process (queue `evaluate`).

Imports torch (through `trainer.rl`); web processes never import this module.
"""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from trainer import checkpoint_files, services
from trainer.errors import without_paths
from trainer.models import Evaluation, EvaluationChunk, GameChunk
from trainer.recording import BestGameRecorder
from trainer.rl.evaluation import evaluate, evaluation_seeds

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


class ChunkHeartbeat:
    """Polled by the games as `keep_going`: beats the chunk's heartbeat every few seconds,
    and says stop once the chunk is gone (its evaluation or its run's generation was
    deleted, or given up)."""

    def __init__(self, model: type[EvaluationChunk | GameChunk], chunk_id: int) -> None:
        self.chunks = model.objects.filter(pk=chunk_id)
        self.last = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last >= HEARTBEAT_SECONDS:
            self.last = now
            try:
                return bool(self.chunks.update(heartbeat_at=timezone.now()))
            except DatabaseError:
                log.exception("heartbeat of %s failed", self.chunks.model.__name__)
        return True


def chunk_execute(*, chunk_id: int, worker: str) -> bool:
    """Play a chunk's games and store them; False if it was done already or cannot be played."""
    chunk = (
        EvaluationChunk.objects.select_related("evaluation__checkpoint", "evaluation__run")
        .filter(pk=chunk_id)
        .first()
    )
    if chunk is None or chunk.status == EvaluationChunk.Status.DONE:
        return False
    evaluation = chunk.evaluation
    if evaluation.status != Evaluation.Status.RUNNING:
        return False
    EvaluationChunk.objects.filter(pk=chunk.pk).exclude(status=EvaluationChunk.Status.DONE).update(
        status=EvaluationChunk.Status.RUNNING,
        worker=worker,
        attempts=F("attempts") + 1,
        heartbeat_at=timezone.now(),
    )
    if evaluation.checkpoint is None:
        services.evaluation_fail(
            evaluation_id=evaluation.pk, reason="its checkpoint was deleted before it was played"
        )
        return False
    run = evaluation.run
    seeds = evaluation_seeds(chunk.first_game + chunk.games)[chunk.first_game :]
    try:
        result = evaluate(
            checkpoint_files.local_path(evaluation.checkpoint),
            seeds=seeds,
            piece_cap=evaluation.piece_cap,
            width=run.config.get("width", 10),
            height=run.config.get("height", 20),
            randomizer=run.config.get("randomizer", "uniform"),
            threads=1,
            keep_going=ChunkHeartbeat(EvaluationChunk, chunk.pk),
            callbacks=[BestGameRecorder(run.pk)],
        )
    except (FileNotFoundError, ValueError, KeyError) as error:
        services.evaluation_fail(
            evaluation_id=evaluation.pk,
            reason=f"cannot load the checkpoint: {without_paths(str(error))}",
        )
        return False
    return services.evaluation_chunk_finish(
        chunk=chunk,
        lines=result.lines,
        pieces=result.pieces,
        ended=result.game_over,
        seconds=result.seconds,
    )
