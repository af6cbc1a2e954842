"""Fixtures that start the real parts: a private Redis, Celery workers and a live daphne.

They use `tetris_site.stack`, the same code that `make run` uses. Each process runs with
DATA_DIR in a temporary folder and the test database, so they see what the test wrote.

The tiers: a unit test gets no server, and what it publishes goes to `published` (a null
publisher); a test marked `redis` gets the session's Redis; a `stack` test (or one using
a worker or daphne fixture) starts real processes too.
"""

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.hashers import (
    PBKDF2PasswordHasher,
    get_hashers,
    get_hashers_by_algorithm,
)
from django.db import connection

from live import bridge
from live.protocol import Envelope
from tetris_site import stack
from tetris_site.settings import channel_layers_for

_kernels_warming: list[subprocess.Popen] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the engine's kernels into numba's cache in the background, niced.

    From a fresh clone (as in CI) the cache is empty, and the first tests that play a game,
    here and in every worker they start, would each compile the kernels (half a minute of
    one core); the suite's first tests mostly wait on processes and a browser, so the
    compile goes on a core they leave idle. From a warm cache it costs about a second.
    """
    _kernels_warming.append(
        subprocess.Popen(
            [sys.executable, "-m", "trainer.tetris.warm"],
            cwd=stack.BASE_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=functools.partial(os.nice, 10),
        )
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for process in _kernels_warming:
        process.kill()
        process.wait()


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for child processes that points at the test database."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    if engine.endswith("postgresql"):
        user, password = settings_dict.get("USER", ""), settings_dict.get("PASSWORD", "")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host, port = settings_dict.get("HOST") or "localhost", settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    raise NotImplementedError(f"no DATABASE_URL for engine {engine}")


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA_DIR for the processes that the tests start."""
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session", autouse=True)
def _media_in_stack_dir(stack_dir: Path) -> None:
    """Checkpoint files where the processes the tests start write them, from the start
    (a storage reads MEDIA_ROOT once, when first used)."""
    settings.MEDIA_ROOT = str(stack_dir / "media")


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2 at one iteration: a test's users cost nothing to create and sign in.

    The hashes it writes name their iteration count, so Django's own PBKDF2 hasher in
    the processes the tests start (daphne, workers) checks them as they are.
    """

    iterations = 1


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """torch in this process on one thread, as the workers the tests start (TORCH_THREADS=1).

    The tests' networks are tiny, and beside those workers on 2 cores a second intra-op
    thread mostly waits for a core: sb3's MaskablePPO test took 48 s instead of 2.4 s.
    """
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _quick_password_hashes() -> None:
    """Hundreds of tests create users: at 0.2 s a hash, minutes of the suite otherwise."""
    hasher = f"{__name__}.{QuickPBKDF2PasswordHasher.__name__}"
    settings.PASSWORD_HASHERS = [hasher, *settings.PASSWORD_HASHERS]
    get_hashers.cache_clear()
    get_hashers_by_algorithm.cache_clear()


@pytest.fixture(scope="session")
def redis_server(stack_dir: Path) -> Iterator[stack.Service]:
    """A private redis-server on a free port; this process's Celery and Channels use it."""
    service = stack.start_redis(stack_dir, log_path=stack_dir / "redis.log")
    from channels.layers import channel_layers

    from tetris_site.celery import app as celery_app

    settings.REDIS_URL = service.url
    settings.CELERY_BROKER_URL = service.url
    settings.CHANNEL_LAYERS = channel_layers_for(service.url)
    channel_layers.backends.clear()
    celery_app.conf.broker_url = service.url
    yield service
    service.stop(grace=5)


UNREACHABLE_REDIS_URL = "redis://127.0.0.1:9/0"


@pytest.fixture
def published() -> list[tuple[str, Envelope]]:
    """What the code under test published, as (group, envelope), in a test with no Redis."""
    return []


@pytest.fixture(autouse=True)
def _live_stream_for_the_tier(
    request: pytest.FixtureRequest,
    published: list[tuple[str, Envelope]],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    marked = any(request.node.get_closest_marker(m) for m in ("redis", "stack"))
    if marked or "redis_server" in request.fixturenames:
        request.getfixturevalue("redis_server")
        yield
        return
    # No server: whatever still reaches for Redis fails at once (mark the test `redis`).
    monkeypatch.setattr(settings, "REDIS_URL", UNREACHABLE_REDIS_URL)
    bridge.configure(sink=lambda group, envelope: published.append((group, envelope)))
    yield
    bridge.configure(sink=None)


@pytest.fixture(scope="session")
def stack_env(
    django_db_setup: None,
    django_db_blocker: object,
    redis_server: stack.Service,
    stack_dir: Path,
) -> dict[str, str]:
    """Environment for child processes: the test database, the test Redis, a temp DATA_DIR."""
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        REDIS_URL=redis_server.url,
        DATA_DIR=str(stack_dir),
        SECRET_KEY=settings.SECRET_KEY,
        DJANGO_SETTINGS_MODULE="tetris_site.settings",
        TORCH_THREADS="1",
    )
    return env


@pytest.fixture(scope="session")
def celery_worker(stack_env: dict[str, str], stack_dir: Path) -> Iterator[stack.Service]:
    """One real Celery worker on queue `training`, also loading the tests' own tasks."""
    service = stack.start_worker(
        stack_env,
        name="test-worker",
        log_path=stack_dir / "worker.log",
        extra_args=["--include", "tests.stack_tasks"],
    )
    yield service
    service.stop(grace=10)


@pytest.fixture(scope="session")
def evaluate_worker(stack_env: dict[str, str], stack_dir: Path) -> Iterator[stack.Service]:
    """One real Celery worker process on queue `evaluate`, as `make run` starts (with 2)."""
    service = stack.start_worker(
        stack_env,
        name="test-evaluate",
        queues="evaluate",
        concurrency=1,
        log_path=stack_dir / "evaluate-worker.log",
    )
    yield service
    service.stop(grace=10)


@pytest.fixture(scope="session")
def live_daphne(stack_env: dict[str, str], stack_dir: Path) -> Iterator[stack.Service]:
    """A real daphne serving the project on a free port."""
    service = stack.start_daphne(
        stack_env, port=stack.free_port(), log_path=stack_dir / "daphne.log"
    )
    yield service
    service.stop(grace=5)


@pytest.fixture
def user(django_user_model: type) -> object:
    """A signed-up user who owns runs."""
    return django_user_model.objects.create_user("ada", password="pw-for-tests-1")


@pytest.fixture
def other_user(django_user_model: type) -> object:
    """A second user, who must not see ada's private runs."""
    return django_user_model.objects.create_user("bob", password="pw-for-tests-2")
