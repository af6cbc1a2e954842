"""Celery tasks: thin adapters that re-fetch by id and call the runner or a service."""

from __future__ import annotations

from celery import shared_task

from trainer import plays, services


@shared_task(name="trainer.tasks.train_run", bind=True, ignore_result=True)
def train_run(self, run_id: int) -> None:
    """Train one run in this worker process; a run that is not queued is left alone."""
    from trainer.runner import run_execute

    run_execute(run_id=run_id, worker=self.request.hostname or "", task_id=self.request.id or "")


@shared_task(
    name="trainer.tasks.play_game",
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
    name="trainer.tasks.evaluate_chunk",
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


@shared_task(name="trainer.tasks.reap_runs", ignore_result=True)
def reap_runs() -> list[int]:
    """Mark runs of lost workers failed."""
    return services.run_reap()
