"""Tasks that only the test worker loads (`--include tests.stack_tasks`)."""

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
