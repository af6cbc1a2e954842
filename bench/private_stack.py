"""What the benchmarks that start real workers share: a private Redis and SQLite database.

`private_stack` makes a fresh data folder, points this process's environment (and so every
process it starts) at it, starts a private Redis, migrates, and sets Django up; it stops
Redis on the way out. `evaluate_worker` is a Celery worker on queue `evaluate`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tetris_site import stack


@contextlib.contextmanager
def private_stack(prefix: str, data_dir: str | None = None, **settings: str) -> Iterator[Path]:
    """A data folder (`data_dir`, or a new temporary one named `prefix`...) with its own
    Redis and database, Django set up on it; `settings` go into the environment too."""
    folder = Path(data_dir or tempfile.mkdtemp(prefix=prefix))
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(
        DATA_DIR=str(folder),
        DJANGO_SETTINGS_MODULE="tetris_site.settings",
        TORCH_THREADS="1",
        **settings,
    )
    from tetris_site.env import prepare_data_dir

    prepare_data_dir(folder)
    redis = stack.start_redis(folder, log_path=folder / "redis.log")
    os.environ["REDIS_URL"] = redis.url
    try:
        stack.manage("migrate", "--noinput", "-v", "0", env=os.environ)
        import django

        django.setup()
        yield folder
    finally:
        redis.stop(grace=5)


@contextlib.contextmanager
def evaluate_worker(processes: int, data_dir: Path) -> Iterator[stack.Service]:
    """A real Celery worker of `processes` processes on queue `evaluate`."""
    worker = stack.start_worker(
        dict(os.environ),
        name=f"bench-{processes}",
        queues="evaluate",
        concurrency=processes,
        log_path=data_dir / f"worker-{processes}.log",
    )
    try:
        yield worker
    finally:
        worker.stop(grace=10)
