"""Celery tasks: thin adapters that re-fetch by id and call the runner, player, evaluator
or spread.

Services enqueue them by name (trainer/queues.py); the code each runs is imported in its
body, so that a process loads torch only once it runs a task that needs it.
"""

from __future__ import annotations

from celery import shared_task

from trainer import plays, queues


@shared_task(name=queues.TRAIN_RUN, bind=True, ignore_result=True)
def train_run(self, run_id: int) -> None:
    """Train one run in this worker process; a run that is not queued is left alone."""
    from trainer.runner import run_execute

    run_execute(run_id=run_id, worker=self.request.hostname or "", task_id=self.request.id or "")


@shared_task(
    name=queues.PLAY_GAME,
    bind=True,
    ignore_result=True,
    # The loop ends itself at PLAY_MAX_SECONDS; this is the backstop should it hang.
    time_limit=plays.PLAY_MAX_SECONDS + 60,
)
def play_game(self, token: str) -> None:
    """Play a play's game at its viewers' pace until they leave (queue `play`)."""
    from trainer.player import play_execute

    play_execute(token=token, task_id=self.request.id or "")


@shared_task(
    name=queues.EVALUATE_CHUNK,
    bind=True,
    ignore_result=True,
    # Acknowledged once played: a chunk whose worker process dies is delivered again (a
    # chunk is stored once, so a second delivery cannot count its games twice).
    acks_late=True,
    reject_on_worker_lost=True,
)
def evaluate_chunk(self, chunk_id: int) -> None:
    """Play one chunk of a requested evaluation and store its games (queue `evaluate`)."""
    from trainer.evaluator import chunk_execute

    chunk_execute(chunk_id=chunk_id, worker=self.request.hostname or "")


@shared_task(
    name=queues.CEM_GAMES,
    bind=True,
    ignore_result=True,
    # As evaluate_chunk: a chunk whose worker process dies is delivered again, and stored once.
    acks_late=True,
    reject_on_worker_lost=True,
)
def cem_games(self, chunk_id: int) -> None:
    """Play one chunk of a cem generation's games and store them (queue `evaluate`)."""
    from trainer.spread import game_chunk_execute, worker_name

    game_chunk_execute(chunk_id=chunk_id, worker=worker_name(self.request.hostname or ""))
