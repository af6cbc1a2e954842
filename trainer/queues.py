"""Handing work to the Celery workers, by task name.

Services enqueue through here and never import `trainer.tasks`, which imports the code
the tasks run (the runner, the evaluator, the player), which calls the services: naming
the task keeps the dependencies one way. Routing to the `training`, `play` and
`evaluate` queues is by name too (CELERY_TASK_ROUTES).
"""

from __future__ import annotations

from celery import current_app

TRAIN_RUN = "trainer.tasks.train_run"
PLAY_GAME = "trainer.tasks.play_game"
EVALUATE_CHUNK = "trainer.tasks.evaluate_chunk"


def enqueue(task: str, *args: object, task_id: str | None = None) -> None:
    """Send one task to the broker (now: callers wrap it in `transaction.on_commit`)."""
    current_app.send_task(task, args=args, task_id=task_id)
