"""Runs one training run in this process: the worker's task and `manage.py train` call it.

Imports torch (through `trainer.rl`); web processes never import this module.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import uuid
from collections.abc import Sequence

from live.publisher import RunPublisher
from trainer import checkpoint_files, queues, services
from trainer.errors import error_text, without_paths
from trainer.lease import RunLease
from trainer.models import InvalidTransition, Run, RunLost
from trainer.recording import RunRecorder
from trainer.rl import Callback, TrainConfig, TrainingDiverged, train
from trainer.selectors import latest_checkpoint
from trainer.spread import WorkerBatches

log = logging.getLogger(__name__)


def worker_name() -> str:
    """This process's name in a run's `worker` field."""
    return f"{socket.gethostname()}"


def within_thread_share(config: TrainConfig) -> TrainConfig:
    """The config with `threads` at most this process's share of the cores: a run asking
    for 256 threads cannot crowd out its neighbours."""
    share = queues.cores_per_process()
    if config.threads <= share:
        return config
    log.info(
        "threads %s is past this process's share of the cores: using %s", config.threads, share
    )
    return dataclasses.replace(config, threads=share)


def run_execute(
    *,
    run_id: int,
    worker: str,
    task_id: str = "",
    extra_callbacks: Sequence[Callback] = (),
    interrupt: threading.Event | None = None,
) -> Run | None:
    """Train a queued run to its end; None if it was not queued (a duplicate delivery).

    The worker holds the run by `task_id` (a new one for `manage.py train`) and writes to
    it only while it does (`trainer.lease`). `interrupt` (Ctrl-C in `manage.py train`)
    stops the run like a stop request.
    """
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.status != Run.Status.QUEUED:
        log.info("run %s is not queued (%s): ignoring this delivery", run_id, run and run.status)
        return None
    task_id = task_id or f"local-{uuid.uuid4()}"
    try:
        run.mark_running(worker=worker, task_id=task_id)
    except InvalidTransition:
        log.info("run %s was taken or stopped meanwhile: ignoring this delivery", run_id)
        return None
    services.publish_status(run, f"running on {worker}")

    lease = RunLease(run.pk, task_id).start()
    recorder = RunRecorder(run, lease)
    publisher = None
    try:
        config = within_thread_share(TrainConfig.from_dict(run.config))
        publisher = RunPublisher(run.pk, frames_per_second=config.frames_per_second)
        checkpoint = latest_checkpoint(run)
        result = train(
            config,
            callbacks=[recorder, publisher, *extra_callbacks],
            should_stop=(
                recorder.should_stop
                if interrupt is None
                else lambda: recorder.should_stop() or interrupt.is_set()
            ),
            # A folder of its own per attempt: a worker that lost the run can never
            # overwrite the checkpoint files of the one that holds it now.
            checkpoint_dir=services.run_media_dir(run.pk) / task_id,
            resume_from=checkpoint_files.local_path(checkpoint) if checkpoint else None,
            batch_player=(
                WorkerBatches(run.pk, task_id, config.cem_chunk_games)
                if config.cem_chunk_games
                else None
            ),
        )
        recorder.flush()
    except RunLost as lost:
        log.warning("run %s: stopped training, writing nothing more: %s", run.pk, lost)
        return run
    except TrainingDiverged as error:
        _end_failed(run, recorder, publisher, f"training diverged: {without_paths(str(error))}")
    except Exception as error:
        log.exception("run %s failed", run.pk)
        _end_failed(run, recorder, publisher, error_text(error))
    else:
        publisher.flush()
        run.refresh_from_db(fields=["status"])
        try:
            if result.stopped or run.status == Run.Status.STOPPING:
                run.mark_stopped(holder=task_id)
            else:
                run.mark_finished(holder=task_id)
        except InvalidTransition:
            log.warning("run %s ended as %s before this worker could end it", run.pk, run.status)
            return run
        services.publish_status(run, "")
    finally:
        lease.close()
    return run


def _end_failed(
    run: Run, recorder: RunRecorder, publisher: RunPublisher | None, reason: str
) -> None:
    try:
        recorder.flush()
    except RunLost:
        return
    if publisher is not None:
        publisher.flush()
    try:
        run.mark_failed(reason, holder=recorder.lease.task_id)
    except InvalidTransition:
        log.warning("run %s ended as %s before it could be marked failed", run.pk, run.status)
        return
    services.publish_status(run, reason)
