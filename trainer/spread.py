"""One cem run over many worker processes: each generation's games go, in chunks, to the
Celery workers of the `evaluate` queue, on any machine, and the run's process waits for them.

The run's process (`WorkerBatches`, its batch player) writes a generation's chunks as
`GameChunk` rows, sends one task per chunk, and waits until every chunk is stored; then it
deletes them. A worker (`game_chunk_execute`) plays a chunk's games and stores them once.
A chunk whose worker process is killed is delivered again by Celery (late acknowledgement);
one whose machine is lost stops beating, and the run's process hands it out again. Every
game is fixed by its seed and weights, so the run learns the same weights whichever
workers, and however many, play its games.

Imports the engine (through `trainer.rl`); web processes never import this module.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from trainer import queues
from trainer.evaluator import ChunkHeartbeat
from trainer.models import GameChunk
from trainer.rl.batches import LinearBatch, PlayedBatch, PlayedGame, play_here

log = logging.getLogger(__name__)

# How often the run's process looks whether its chunks are done.
POLL_SECONDS = 0.05
# How often it looks for chunks that were lost, or never reached a queue.
RECOVER_EVERY_SECONDS = 5.0
# A running chunk whose worker has not beaten for this long was lost with its machine.
STALE_AFTER = timedelta(seconds=30)
# A pending chunk that waited this long and is in no queue is sent again.
RESEND_AFTER = timedelta(seconds=30)
# A generation that no worker has touched for this long is logged: are there any?
IDLE_WARNING_SECONDS = 60.0


def chunk_task_id(chunk_id: int) -> str:
    """One task id per chunk, however often it is sent: found in the queue by it."""
    return f"game-chunk-{chunk_id}"


class WorkerBatches:
    """A run's batch player: sends each batch to the `evaluate` workers in chunks of
    `chunk_games` games and waits for all of them (`trainer.rl.batches.BatchPlayer`)."""

    def __init__(self, run_id: int, task_id: str, chunk_games: int) -> None:
        self.run_id = run_id
        self.task_id = task_id
        self.chunk_games = chunk_games
        self.batches = 0

    def __call__(self, batch: LinearBatch, keep_going: Callable[[], bool]) -> PlayedBatch | None:
        self.batches += 1
        name = f"{self.task_id}:{self.batches}"
        size = self.chunk_games
        with transaction.atomic():
            chunks = GameChunk.objects.bulk_create(
                GameChunk(
                    run_id=self.run_id,
                    batch=name,
                    index=index,
                    games=batch.part(start, start + size).to_dict(),
                )
                for index, start in enumerate(range(0, len(batch), size))
            )
        try:
            send([chunk.pk for chunk in chunks])
            return self._wait(name, len(chunks), keep_going)
        finally:
            # Done, or given up (a stop): a worker still on one of them sees it gone and stops.
            GameChunk.objects.filter(batch=name).delete()

    def _wait(self, name: str, count: int, keep_going: Callable[[], bool]) -> PlayedBatch | None:
        started = time.monotonic()
        next_recovery = started + RECOVER_EVERY_SECONDS
        warned = False
        chunks = GameChunk.objects.filter(batch=name)
        while chunks.filter(status=GameChunk.Status.DONE).count() < count:
            if not keep_going():
                return None
            now = time.monotonic()
            if now >= next_recovery:
                next_recovery = now + RECOVER_EVERY_SECONDS
                recover(name)
                idle = not warned and now - started >= IDLE_WARNING_SECONDS
                if idle and not chunks.exclude(status=GameChunk.Status.PENDING).exists():
                    warned = True
                    log.warning(
                        "run %s: no worker took a chunk of %s in %d s; are workers "
                        "listening on queue %r?",
                        self.run_id,
                        name,
                        now - started,
                        queues.EVALUATE_QUEUE,
                    )
            time.sleep(POLL_SECONDS)
        rows = list(chunks.order_by("index"))
        games = [
            PlayedGame(seed, batch["width"], batch["height"], batch["randomizer"], *figures)
            for row in rows
            for batch in [row.games]
            for seed, *figures in zip(
                batch["seeds"], row.lines, row.scores, row.pieces, row.ended, strict=True
            )
        ]
        return PlayedBatch(games, workers=len({row.worker for row in rows}))


def send(chunk_ids: list[int]) -> None:
    """One task per chunk on the `evaluate` queue; one the broker cannot take now is sent
    again by `recover` once it has waited RESEND_AFTER."""
    for chunk_id in chunk_ids:
        try:
            queues.enqueue(queues.CEM_GAMES, chunk_id, task_id=chunk_task_id(chunk_id))
        except queues.QueueUnavailable:
            log.warning("game chunk %s could not be queued: sending it again later", chunk_id)


def recover(name: str) -> list[int]:
    """Hand out again the chunks of batch `name` whose worker stopped beating (its machine
    was lost: a killed process's chunk is redelivered by Celery at once), and send again
    those that waited in no queue; return their ids."""
    now = timezone.now()
    again = []
    for chunk in GameChunk.objects.filter(
        batch=name, status=GameChunk.Status.RUNNING, heartbeat_at__lt=now - STALE_AFTER
    ):
        handed_out = GameChunk.objects.filter(
            pk=chunk.pk, status=GameChunk.Status.RUNNING, heartbeat_at=chunk.heartbeat_at
        ).update(status=GameChunk.Status.PENDING, heartbeat_at=now)
        if handed_out:
            log.warning("game chunk %s was lost with %s: handing it out", chunk.pk, chunk.worker)
            again.append(chunk.pk)
    cutoff = now - RESEND_AFTER
    waited = list(
        GameChunk.objects.filter(batch=name, status=GameChunk.Status.PENDING)
        .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff))
        .values_list("pk", flat=True)
    )
    if waited:
        try:
            waiting = queues.waiting_task_ids(queues.EVALUATE_QUEUE)
        except queues.QueueUnavailable as error:
            log.warning("cannot look into the queue for batch %s: %s", name, error)
            waiting = {chunk_task_id(pk) for pk in waited}
        unsent = [pk for pk in waited if chunk_task_id(pk) not in waiting]
        if unsent:
            log.warning("game chunks %s were in no queue: sending them again", unsent)
            GameChunk.objects.filter(pk__in=unsent).update(heartbeat_at=now)
            again += unsent
    send(again)
    return again


def worker_name(hostname: str) -> str:
    """A worker process's name in a chunk: its Celery worker's, and its process id."""
    return f"{hostname}/{os.getpid()}"


def game_chunk_execute(*, chunk_id: int, worker: str) -> bool:
    """Play a chunk's games and store them; False if it was done, or is gone (its run
    stopped or moved on), before they could be stored."""
    chunk = GameChunk.objects.filter(pk=chunk_id).first()
    if chunk is None or chunk.status == GameChunk.Status.DONE:
        return False
    claimed = (
        GameChunk.objects.filter(pk=chunk_id)
        .exclude(status=GameChunk.Status.DONE)
        .update(
            status=GameChunk.Status.RUNNING,
            worker=worker,
            attempts=F("attempts") + 1,
            heartbeat_at=timezone.now(),
        )
    )
    if not claimed:
        return False
    batch = LinearBatch.from_dict(chunk.games)
    # One thread, as an evaluation chunk: a machine runs as many worker processes as cores.
    played = play_here(batch, threads=1, keep_going=ChunkHeartbeat(GameChunk, chunk_id))
    if played is None:
        return False
    # A chunk that cannot be stored now (the database is away) stops beating, and the
    # run's process hands it out again.
    stored = (
        GameChunk.objects.filter(pk=chunk_id)
        .exclude(status=GameChunk.Status.DONE)
        .update(
            status=GameChunk.Status.DONE,
            worker=worker,
            heartbeat_at=timezone.now(),
            lines=[game.lines for game in played.games],
            scores=[game.score for game in played.games],
            pieces=[game.pieces for game in played.games],
            ended=[game.game_over for game in played.games],
        )
    )
    return bool(stored)
