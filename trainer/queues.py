"""Handing work to the Celery workers, by task name, and looking into the broker.

Services enqueue through here and never import `trainer.tasks`, which imports the code
the tasks run (the runner, the evaluator, the player, the spread), which calls the services: naming
the task keeps the dependencies one way. Routing to the `training`, `play` and
`evaluate` queues is by name too (CELERY_TASK_ROUTES).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os

import redis
from celery import current_app
from django.conf import settings
from kombu.exceptions import KombuError, OperationalError

log = logging.getLogger(__name__)

TRAIN_RUN = "trainer.tasks.train_run"
PLAY_GAME = "trainer.tasks.play_game"
EVALUATE_CHUNK = "trainer.tasks.evaluate_chunk"
CEM_GAMES = "trainer.tasks.cem_games"

TRAINING_QUEUE = "training"
EVALUATE_QUEUE = "evaluate"

# A worker's number of processes, which each of its processes reads from its environment.
WORKER_PROCESSES_ENV = "TETRIS_WORKER_CONCURRENCY"


def cores_per_process() -> int:
    """This process's share of the machine's cores: all of them outside a worker."""
    processes = int(os.environ.get(WORKER_PROCESSES_ENV, "1"))
    return max(1, (os.cpu_count() or 1) // max(1, processes))


# How the Redis transport names a queue's lists (one per priority step) and the hash of
# messages fetched but not yet acknowledged (kombu.transport.redis).
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)
_UNACKED = "unacked"


class QueueUnavailable(Exception):
    """The broker could not take the task (Redis is down or unreachable)."""


def enqueue(task: str, *args: object, task_id: str | None = None) -> None:
    """Send one task to the broker; QueueUnavailable if it cannot take it."""
    try:
        current_app.send_task(task, args=args, task_id=task_id)
    except (OperationalError, KombuError, redis.RedisError, OSError) as error:
        raise QueueUnavailable(f"the task queue is unavailable: {error}") from error


def terminate(task_id: str) -> None:
    """Kill the worker process running `task_id`, if any (its pool starts a new one).

    Best effort: a broadcast to every worker; none may be running it any more.
    """
    try:
        current_app.control.revoke(task_id, terminate=True, signal="SIGKILL")
    except (OperationalError, KombuError, redis.RedisError, OSError):
        log.exception("could not ask the workers to terminate task %s", task_id)


def waiting_task_ids(queue: str) -> set[str]:
    """The ids of the tasks in `queue` that no worker has taken, or has taken but not yet
    acknowledged; QueueUnavailable if the broker cannot be read.

    Reads the Redis transport's lists directly: the broker is this installation's Redis.
    """
    names = [
        queue if not step else f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS
    ]
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.lrange(name, 0, -1)
            pipe.hvals(_UNACKED)
            *lists, unacked = pipe.execute()
    except redis.RedisError as error:
        raise QueueUnavailable(f"the task queue cannot be read: {error}") from error
    ids = {_task_id(payload) for items in lists for payload in items}
    for entry in unacked:
        with contextlib.suppress(ValueError, IndexError, TypeError):
            ids.add(_task_id(json.loads(entry)[0]))
    ids.discard("")
    return ids


def _task_id(message: bytes | str | dict) -> str:
    try:
        if not isinstance(message, dict):
            message = json.loads(message)
        return str(message.get("headers", {}).get("id") or "")
    except (ValueError, AttributeError):
        return ""
