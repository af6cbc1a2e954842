"""Tasks that only the test worker loads (`--include tests.stack_tasks`)."""

import time

from celery import shared_task

from live import bridge
from live.names import run_group
from live.protocol import RunStatus


@shared_task(name="tests.publish_status")
def publish_status(run_id: int, status: str, detail: str, t: float) -> None:
    """Publish a run's status from inside the worker, through the bridge."""
    future = bridge.publish(run_group(run_id), RunStatus(status, detail, t))
    if future is not None:
        future.result(timeout=5)


HANG_MESSAGE = "the training loop of run %s hangs now"


@shared_task(name="tests.train_then_hang", bind=True)
def train_then_hang(self: object, run_id: int) -> None:
    """Train a run as `trainer.tasks.train_run` does, but hang the training loop for good
    after its first checkpoint (a deadlock, a stuck read): a stop request is never seen."""
    import logging

    from trainer.rl.events import Callback, CheckpointInfo, EpisodeMetrics
    from trainer.runner import run_execute

    class HangAfterCheckpoint(Callback):
        checkpointed = False

        def on_checkpoint(self, c: CheckpointInfo) -> None:
            self.checkpointed = True

        def on_episode(self, m: EpisodeMetrics) -> None:
            if self.checkpointed:
                logging.getLogger(__name__).warning(HANG_MESSAGE, run_id)
                while True:
                    time.sleep(3600)

    run_execute(
        run_id=run_id,
        worker=self.request.hostname or "",
        task_id=self.request.id or "",
        extra_callbacks=[HangAfterCheckpoint()],
    )


@shared_task(name="tests.torch_threads")
def torch_threads(key: str) -> None:
    """Write torch's threads in this pool process under `key` in Redis (the workers keep
    no task results)."""
    import json

    import redis
    import torch
    from django.conf import settings

    answer = {"threads": torch.get_num_threads()}
    redis.Redis.from_url(settings.REDIS_URL).set(key, json.dumps(answer), ex=60)
