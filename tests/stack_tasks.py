"""Tasks that only the test worker loads (`--include tests.stack_tasks`)."""

from celery import shared_task

from visualizer import bridge


@shared_task(name="tests.publish_to_run")
def publish_to_run(run_id: int, kind: str, payload: dict) -> None:
    """Publish one message to a run's group from inside the worker, through the bridge."""
    future = bridge.publish(bridge.run_group(run_id), kind, payload)
    if future is not None:
        future.result(timeout=5)
