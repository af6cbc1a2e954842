"""Polling helpers for tests that watch real processes."""

import os
import signal
import time
from collections.abc import Callable

import psutil
from django.db.models import Max

from trainer.models import Metric, Run


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll until `condition()` is truthy, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def status_of(run_id: int) -> str:
    """The run's status in the database now."""
    return Run.objects.values_list("status", flat=True).get(pk=run_id)


def last_episode(run_id: int) -> int:
    """The highest episode stored for the run (0 if none)."""
    return Metric.objects.filter(run_id=run_id).aggregate(m=Max("episode"))["m"] or 0


def kill_pool_processes(worker_pid: int) -> None:
    """SIGKILL a Celery worker's pool processes, as the kernel's OOM killer would; the
    worker starts new ones."""
    children = psutil.Process(worker_pid).children()
    assert children, "the worker has a pool process"
    for child in children:
        os.kill(child.pid, signal.SIGKILL)
