"""What a Celery worker does besides its tasks, hooked to its start and stop signals.

- Each worker process sizes torch's thread pool to its share of the cores.
- A thread beats the worker's liveness key and, every SWEEP_SECONDS, sweeps (any live
  worker does): runs whose worker was lost, runs that did not stop when asked, queued
  runs in no queue, evaluation chunks whose worker was lost, and cem game chunks left
  behind.
- A warm shutdown asks this worker's runs to checkpoint and stop.
"""

import logging
import os
import sys
import threading
import time

from celery import signals

from trainer.queues import WORKER_PROCESSES_ENV as _CONCURRENCY_ENV
from trainer.queues import cores_per_process


@signals.worker_init.connect
def _remember_concurrency(sender: object, **kwargs: object) -> None:
    # Child processes inherit the environment, so each can size its torch pool.
    os.environ[_CONCURRENCY_ENV] = str(getattr(sender, "concurrency", 1) or 1)


@signals.worker_process_init.connect
def _set_torch_threads(**kwargs: object) -> None:
    from django.conf import settings

    size_torch_threads(torch_threads_per_process(settings.TORCH_THREADS))


def size_torch_threads(threads: int) -> None:
    """Give torch `threads` intra-op threads in this process, without importing it.

    torch sizes its pool from OMP_NUM_THREADS when first imported, so a worker process
    that never trains (the play and evaluate pools of `make run`, mostly) never pays the
    seconds of importing it. numba sizes its own pool (NUMBA_NUM_THREADS), not from this.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)


def torch_threads_per_process(configured: int) -> int:
    """Threads for one worker process: the setting, or the cores shared among processes."""
    return configured if configured > 0 else cores_per_process()


_liveness_stop = threading.Event()


@signals.worker_ready.connect
def _start_liveness(sender: object, **kwargs: object) -> None:
    from django.conf import settings

    from tetris_site import liveness

    hostname = sender.hostname
    concurrency = int(os.environ.get(_CONCURRENCY_ENV, "1"))

    def beat_forever() -> None:
        last_sweep = 0.0
        while not _liveness_stop.is_set():
            liveness.beat(hostname, concurrency=concurrency)
            # Any live worker sweeps: runs of a lost worker are failed even if it never returns.
            if time.monotonic() - last_sweep >= settings.SWEEP_SECONDS:
                sweep()
                last_sweep = time.monotonic()
            _liveness_stop.wait(min(liveness.BEAT_SECONDS, settings.SWEEP_SECONDS))

    threading.Thread(target=beat_forever, name="liveness", daemon=True).start()


def sweep() -> None:
    """One sweep: fail runs whose worker was lost, end runs that did not stop when asked,
    send again queued runs that are in no queue, hand out lost evaluation chunks and send
    again those in no queue, delete cem game chunks no run waits for, and advance the
    experiments."""
    from django.db import DatabaseError, connection

    from trainer import experiments, queues, services

    log = logging.getLogger(__name__)
    for step in (
        services.run_reap,
        services.runs_end_unstopped,
        services.runs_requeue_unsent,
        services.evaluation_chunks_requeue_lost,
        services.evaluation_chunks_requeue_unsent,
        services.game_chunks_discard,
        experiments.experiments_advance,
    ):
        try:
            step()
        except (DatabaseError, queues.QueueUnavailable):
            log.exception("the sweep's %s failed", step.__name__)
        except Exception:
            # Whatever one step raises, the next steps, and the next sweeps, still run.
            log.exception("the sweep's %s failed unexpectedly", step.__name__)
    connection.close()  # this thread's connection: no idle one held between sweeps


@signals.worker_shutting_down.connect
def _stop_own_runs(sender: str, **kwargs: object) -> None:
    # A warm shutdown waits for running tasks: ask this worker's runs to checkpoint and
    # stop (within a second) instead of training on until their budget ends.
    from trainer.services import runs_stop_on_worker

    runs_stop_on_worker(worker=sender, detail="the worker is shutting down")


@signals.worker_shutdown.connect
def _stop_liveness(sender: object, **kwargs: object) -> None:
    from tetris_site import liveness

    _liveness_stop.set()
    liveness.forget(sender.hostname)
