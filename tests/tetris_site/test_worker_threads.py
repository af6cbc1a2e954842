"""A worker process sizes torch's threads to its share of the cores (TORCH_THREADS), and
does so without importing torch: a pool process that never trains never pays for it."""

import json
import os
import subprocess
import sys
import uuid

import pytest
import redis

from tests.faults.waiting import wait_for
from tests.stack_tasks import torch_threads
from tetris_site import stack

SIZE_THEN_IMPORT = """
import sys
from tetris_site.worker_lifecycle import size_torch_threads
size_torch_threads(1)
assert "torch" not in sys.modules, "sizing imported torch"
import torch
print(torch.get_num_threads())
"""

IMPORT_THEN_SIZE = """
import torch
from tetris_site.worker_lifecycle import size_torch_threads
size_torch_threads(1)
print(torch.get_num_threads())
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: torch has one thread anyway")
@pytest.mark.parametrize("script", [SIZE_THEN_IMPORT, IMPORT_THEN_SIZE], ids=["before", "after"])
def test_torch_gets_the_sized_threads_whether_imported_before_or_after(script: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=stack.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]


@pytest.mark.stack
def test_a_real_workers_pool_process_has_the_configured_torch_threads(
    celery_worker: stack.Service, stack_env: dict
) -> None:
    key = f"tests:torch-threads:{uuid.uuid4()}"
    torch_threads.apply_async((key,))
    client = redis.Redis.from_url(stack_env["REDIS_URL"])
    answer = wait_for(lambda: client.get(key), 60, "the task's answer")
    assert json.loads(answer)["threads"] == int(stack_env["TORCH_THREADS"])
