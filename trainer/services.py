"""Writes with side effects: create, start, stop, resume, clone and delete runs; start plays.

Every function is keyword-only, checks access through `selectors`, and enqueues work
only after the transaction commits, so a worker never sees an uncommitted row.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from live import bridge
from live.names import run_group, run_plays_group
from live.protocol import BestGames, Checkpoints, EvaluationUpdate, RunStatus
from trainer import checkpoint_files, plays, queues
from trainer.exporting import best_games_summary, checkpoint_summary, evaluation_summary
from trainer.models import (
    BestGame,
    Checkpoint,
    Evaluation,
    EvaluationChunk,
    Experiment,
    ExperimentTrial,
    GameChunk,
    InvalidTransition,
    Run,
    RunLost,
)
from trainer.rl import events
from trainer.rl.config import ConfigError, TrainConfig
from trainer.selectors import (
    RunNotFound,
    best_checkpoint,
    can_see,
    ensure_can_control,
    ensure_can_stop,
    latest_checkpoint,
    run_for_viewer,
)
from trainer.version import code_version

log = logging.getLogger(__name__)

HEARTBEAT_STALE_AFTER = timedelta(seconds=settings.RUN_STALE_SECONDS)


def run_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    algorithm: str | None = None,
    preset: str = "quick",
    config: dict | None = None,
    seed: int | None = None,
    visibility: str = Run.Visibility.PRIVATE,
    experiment: Experiment | None = None,
    trial: ExperimentTrial | None = None,
    seed_index: int | None = None,
) -> Run:
    """Validate the config and store a queued run (of `experiment`, one seed of one of its
    configurations, if given); ConfigError names every bad field."""
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name or len(name) > 200:
        errors["name"] = "must be 1 to 200 characters"
    elif "\x00" in name:
        # PostgreSQL text cannot hold NUL; say so instead of failing on save.
        errors["name"] = "must not contain NUL characters"
    if visibility not in Run.Visibility.values:
        errors["visibility"] = f"must be one of {', '.join(Run.Visibility.values)}"
    if config is not None and not isinstance(config, dict):
        errors["config"] = "must be an object of setting names to values"
        config = None
    overrides = dict(config or {})
    if algorithm is not None:
        overrides["algorithm"] = algorithm
    if seed is not None:
        overrides["seed"] = seed
    try:
        train_config = TrainConfig.from_preset(preset or "quick", overrides)
    except ConfigError as error:
        errors.update(error.errors)
    if errors:
        raise ConfigError(errors)
    return Run.objects.create(
        owner=owner,
        name=name,
        algorithm=train_config.algorithm,
        preset=preset or "quick",
        config=train_config.to_dict(),
        seed=train_config.seed,
        visibility=visibility,
        status=Run.Status.QUEUED,
        queued_at=Now(),
        code_version=code_version(),
        experiment=experiment,
        trial=trial,
        seed_index=seed_index,
    )


class LimitReached(Exception):
    """A per-user cap (a setting) refuses this; the message says which and how to go on."""


def _ensure_below_active_runs_cap(owner: AbstractBaseUser, *, adding: Run | None = None) -> None:
    """Refuse a run that would take the owner past MAX_ACTIVE_RUNS_PER_USER."""
    cap = settings.MAX_ACTIVE_RUNS_PER_USER
    if not cap:
        return
    # Lock the owner's row: two requests at once cannot both take the last place.
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    active = Run.objects.filter(owner_id=owner.pk, status__in=Run.ACTIVE)
    if adding is not None:
        active = active.exclude(pk=adding.pk)
    if active.count() >= cap:
        raise LimitReached(
            f"you have {cap} runs queued or running, the most one user may have at once "
            "(MAX_ACTIVE_RUNS_PER_USER): stop one, or wait for one to end"
        )


def _enqueue(run: Run, undo: Callable[[], object]) -> None:
    """Hand the run to the workers once the transaction commits. If the broker cannot take
    it, `undo()` (the run was never queued) and raise QueueUnavailable."""
    run_id, task_id = run.pk, run.task_id

    def send() -> None:
        try:
            queues.enqueue(queues.TRAIN_RUN, run_id, task_id=task_id)
        except queues.QueueUnavailable:
            log.warning("run %s could not be queued: the broker is unavailable", run_id)
            undo()
            raise

    transaction.on_commit(send)


def run_create_and_start(*, owner: AbstractBaseUser, **fields: object) -> Run:
    """Create a run and queue it; LimitReached past the owner's cap. If the broker cannot
    take it, no run is left and QueueUnavailable is raised (the API answers 503)."""
    with transaction.atomic():
        _ensure_below_active_runs_cap(owner)
        run = run_create(owner=owner, **fields)
        run.task_id = str(uuid.uuid4())
        run.save(update_fields=["task_id"])
        run_id = run.pk
        _enqueue(run, lambda: Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).delete())
    return run


def run_stop(*, run: Run, user: AbstractBaseUser) -> Run:
    """Record a stop request; the worker checkpoints and stops within a second (the sweep
    terminates it after RUN_STOP_TIMEOUT_SECONDS)."""
    ensure_can_stop(user, run)
    if run.status == Run.Status.STOPPING:
        return run
    run.request_stop()
    publish_status(run, "stop requested" if run.status == Run.Status.STOPPING else "")
    return run


def run_resume(*, run: Run, user: AbstractBaseUser) -> Run:
    """Queue a stopped or failed run again; it continues from its last checkpoint.

    LimitReached past the owner's cap; QueueUnavailable (the run unchanged) if the broker
    cannot take it."""
    ensure_can_control(user, run)
    before = {"status": run.status, "error": run.error, "finished_at": run.finished_at}
    task_id = str(uuid.uuid4())

    def undo() -> None:
        Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED, task_id=task_id).update(**before)
        run.refresh_from_db()

    with transaction.atomic():
        _ensure_below_active_runs_cap(run.owner, adding=run)
        run.requeue(task_id=task_id)
        _enqueue(run, undo)
    publish_status(run, "resumed")
    return run


def run_start_or_resume(*, run: Run, user: AbstractBaseUser) -> Run:
    """The viewer's Start: queue a stopped or failed run again (others are already started)."""
    ensure_can_control(user, run)
    if run.status not in (Run.Status.STOPPED, Run.Status.FAILED):
        raise InvalidTransition(
            f"run {run.pk} is {run.status}: only a stopped or failed run can start"
        )
    return run_resume(run=run, user=user)


def run_set_visibility(*, run: Run, user: AbstractBaseUser, visibility: str) -> Run:
    """Make a run public or private (owner only); viewers who lost access are cut off."""
    ensure_can_control(user, run)
    if visibility not in Run.Visibility.values:
        raise ConfigError({"visibility": f"must be one of {', '.join(Run.Visibility.values)}"})
    run.visibility = visibility
    run.save(update_fields=["visibility"])
    if visibility == Run.Visibility.PRIVATE:
        bridge.publish_access_changed(run_group(run.pk))
        bridge.publish_access_changed(run_plays_group(run.pk))
    return run


def run_clone(*, run: Run, user: AbstractBaseUser, name: str | None = None) -> Run:
    """Start a new run, owned by `user`, with the same config as one they may see."""
    if not can_see(user, run):
        raise RunNotFound(f"run {run.pk} not found")
    return run_create_and_start(
        owner=user,
        name=name or f"{run.name} (copy)"[:200],
        preset=run.preset,
        config=run.config,
        visibility=Run.Visibility.PRIVATE,
    )


def run_delete(*, run: Run, user: AbstractBaseUser) -> None:
    """Delete a run that no worker holds, with its metrics and checkpoint files."""
    ensure_can_control(user, run)
    folder = run_media_dir(run.pk)
    with transaction.atomic():
        # Locked and checked as it is now, not as this object last saw it: a worker may
        # have taken the run meanwhile.
        current = Run.objects.select_for_update().filter(pk=run.pk).first()
        if current is None:
            raise RunNotFound(f"run {run.pk} not found")
        if current.status in Run.HELD:
            raise InvalidTransition(f"run {run.pk} is {current.status}: stop it before deleting it")
        checkpoints = list(Checkpoint.objects.filter(run=run))
        current.delete()

        def remove_files() -> None:  # only once the rows are gone for good
            for checkpoint in checkpoints:
                checkpoint_files.delete(checkpoint)
            shutil.rmtree(folder, ignore_errors=True)

        transaction.on_commit(remove_files)


def run_reap(*, stale_after: timedelta = HEARTBEAT_STALE_AFTER) -> list[int]:
    """Fail runs whose worker stopped beating ("worker lost") and terminate that worker's
    task, should it be alive but hung; return their ids. Ages are on the database's clock."""
    stale = Run.objects.filter(status__in=Run.HELD, heartbeat_at__lt=Now() - stale_after)

    def fail(run: Run) -> None:
        seen = timezone.localtime(run.heartbeat_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        reason = f"worker lost: {run.worker or 'worker'} sent no heartbeat since {seen}"
        run.mark_failed(reason, holder=run.task_id)

    reaped = _end_held(stale, fail)
    if reaped:
        log.warning("marked runs %s failed: worker lost", reaped)
    return reaped


STOP_TIMEOUT = timedelta(seconds=settings.RUN_STOP_TIMEOUT_SECONDS)


def runs_end_unstopped(*, timeout: timedelta = STOP_TIMEOUT) -> list[int]:
    """End runs still `stopping` `timeout` after the request: their worker process is
    terminated (its pool starts a new one), and the run ends `stopped` at its last
    checkpoint, or `failed` if it has none. Return their ids."""
    late = Run.objects.filter(status=Run.Status.STOPPING, stop_requested_at__lt=Now() - timeout)
    what = f"did not stop within {timeout.total_seconds():.0f} s of the request"

    def end(run: Run) -> None:
        checkpoint = latest_checkpoint(run)
        if checkpoint is None:
            reason = f"{what}: its worker process was terminated before a checkpoint"
            run.mark_failed(reason, holder=run.task_id)
        else:
            note = (
                f"{what}: its worker process was terminated; it resumes from its checkpoint "
                f"at episode {checkpoint.episode:,}"
            )
            run.mark_stopped(holder=run.task_id, note=note)

    ended = _end_held(late, end)
    if ended:
        log.warning("runs %s did not stop when asked: their worker processes were killed", ended)
    return ended


def _end_held(runs: Iterable[Run], end: Callable[[Run], None]) -> list[int]:
    """End each run for the worker that holds it, kill that worker's task should it still
    live, and tell viewers; the ids of those ended (not those that ended on their own)."""
    ended = []
    for run in runs:
        try:
            end(run)  # conditional on the same holder: one sweep wins, a resumed run is safe
        except InvalidTransition:
            continue
        queues.terminate(run.task_id)
        publish_status(run, run.error)
        ended.append(run.pk)
    return ended


REQUEUE_AFTER = timedelta(seconds=settings.RUN_REQUEUE_AFTER_SECONDS)


def runs_requeue_unsent(*, after: timedelta = REQUEUE_AFTER) -> list[int]:
    """Send again the runs queued for longer than `after` whose task is in no queue (Redis
    lost it, or a worker died between taking it and starting it), under the same task id,
    so that a second delivery of one run is ignored. Return their ids; QueueUnavailable
    if Redis is down."""
    queued = dict(
        Run.objects.filter(status=Run.Status.QUEUED, queued_at__lt=Now() - after)
        .exclude(task_id="")
        .values_list("pk", "task_id")
    )
    if not queued:
        return []
    waiting = queues.waiting_task_ids(queues.TRAINING_QUEUE)
    unsent = [pk for pk, task_id in queued.items() if task_id not in waiting]
    for pk in unsent:
        queues.enqueue(queues.TRAIN_RUN, pk, task_id=queued[pk])
    if unsent:
        log.warning("queued runs %s were in no queue: sent them again", unsent)
    return unsent


# The note of a run stopped because its worker shut down (not its owner's wish): an
# experiment resumes such a run, as it does one whose worker was lost.
STOPPED_FOR_SHUTDOWN = "stopped because its worker shut down"


def runs_stop_on_worker(*, worker: str, detail: str) -> list[int]:
    """Ask every run that `worker` trains to checkpoint and stop (worker shutdown)."""
    stopped = []
    for run in Run.objects.filter(worker=worker, status=Run.Status.RUNNING):
        try:
            run.request_stop(note=f"{STOPPED_FOR_SHUTDOWN}: {detail}")
        except InvalidTransition:
            continue
        publish_status(run, detail)
        stopped.append(run.pk)
    return stopped


def run_record_best_game(*, run_id: int, game: events.BestGame) -> bool:
    """Keep a game as the run's best of its kind if it beats the one kept; True if it did."""
    # Stored signed: the engine takes seeds modulo 2**64, so the game stays the same.
    seed = game.seed - 2**64 if game.seed >= 2**63 else game.seed
    fields = {
        "seed": seed,
        "width": game.width,
        "height": game.height,
        "randomizer": game.randomizer,
        "actions": game.actions,
        "lines": game.lines,
        "score": game.score,
        "pieces": game.pieces,
        "episode": game.episode,
        "policy": game.policy,
        "recorded_at": timezone.now(),
    }
    with transaction.atomic():
        kept = BestGame.objects.select_for_update().filter(run_id=run_id, kind=game.kind).first()
        if kept is None:
            BestGame.objects.create(run_id=run_id, kind=game.kind, **fields)
            transaction.on_commit(lambda: publish_best_games(run_id))
            return True
        if game.lines <= kept.lines:
            return False
        BestGame.objects.filter(pk=kept.pk).update(**fields)
    transaction.on_commit(lambda: publish_best_games(run_id))
    return True


def publish_best_games(run_id: int) -> None:
    """Send the run's viewers its best games (best effort)."""
    games = best_games_summary(run_id)
    bridge.publish(run_group(run_id), BestGames(games))


# Latest checkpoints kept per run (the best-evaluated one is kept besides).
CHECKPOINTS_KEPT = 10


def run_record_checkpoint(
    *, run_id: int, info: events.CheckpointInfo, wall_time: float, holder: str | None = None
) -> None:
    """List a checkpoint just written, as a file of its own; prune the ones it replaces.

    The training loop renames each new checkpoint over the last (`checkpoint.pt`,
    `best.pt`); a hard link keeps this version under a name of its own. Only one `best`
    is kept, and the newest CHECKPOINTS_KEPT `latest` ones. With `holder`, the checkpoint
    is listed only while the worker with that task id holds the run (else RunLost).
    """
    prefix = "best-episode" if info.kind == Checkpoint.Kind.BEST else "episode"
    snapshot = Path(info.path).parent / f"{prefix}-{info.episode:09d}.pt"
    _link_or_copy(Path(info.path), snapshot)
    size = snapshot.stat().st_size
    name = checkpoint_files.store(snapshot)
    with transaction.atomic():
        if holder is not None:
            # Lock the row while listing, so the hold cannot end in between.
            held = Run.objects.select_for_update().filter(
                pk=run_id, task_id=holder, status__in=Run.HELD
            )
            if not held.exists():
                raise RunLost(f"run {run_id} is no longer held by task {holder}")
        kept = Checkpoint.objects.create(
            run_id=run_id,
            kind=info.kind,
            file=name,
            episode=info.episode,
            total_pieces=info.total_pieces,
            wall_time=wall_time,
            size_bytes=size,
        )
    same_kind = Checkpoint.objects.filter(run_id=run_id, kind=info.kind).exclude(pk=kept.pk)
    keep = 0 if info.kind == Checkpoint.Kind.BEST else CHECKPOINTS_KEPT - 1
    for old in same_kind.order_by("-episode", "-id")[keep:]:
        # Another row may name the same file (a run resumed from an earlier checkpoint
        # writes the same episode again): the file goes with its last row.
        others = Checkpoint.objects.filter(file=old.file.name).exclude(pk=old.pk).exists()
        if not others:
            checkpoint_files.delete(old)
        old.delete()
    publish_checkpoints(run_id)


def _link_or_copy(source: Path, target: Path) -> None:
    # A hard link is free and keeps this version when the next save renames over it.
    try:
        if target.exists():
            target.unlink()
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def publish_checkpoints(run_id: int) -> None:
    """Send the run's viewers its list of checkpoints, newest first (best effort)."""
    checkpoints = Checkpoint.objects.filter(run_id=run_id).order_by("-episode", "-id")
    bridge.publish(run_group(run_id), Checkpoints([checkpoint_summary(c) for c in checkpoints]))


def run_record_evaluation(*, run_id: int, report: events.Evaluation) -> Evaluation:
    """Store a periodic evaluation; a best one becomes the run's score. Viewers are told."""
    figures = report.as_dict()
    evaluation = Evaluation.objects.create(
        run_id=run_id,
        kind=Evaluation.Kind.PERIODIC,
        games_done=report.games,
        finished_at=timezone.now(),
        **figures,
    )
    if report.best:
        Run.objects.filter(pk=run_id).update(best_evaluation=evaluation_summary(evaluation))
    publish_evaluation(evaluation)
    return evaluation


# A requested evaluation's games, split into this many chunks at most (one game per
# chunk up to that): game lengths are close to exponential, so small chunks let the
# workers share the long games out evenly.
MAX_EVALUATION_CHUNKS = 64
MAX_EVALUATION_GAMES = 10_000
MAX_EVALUATION_PIECE_CAP = 10**9
# A chunk whose worker has not beaten for this long was lost with it, and is done again.
CHUNK_STALE_AFTER = timedelta(seconds=settings.RUN_STALE_SECONDS)


def evaluation_start(
    *,
    run: Run,
    user: AbstractBaseUser,
    games: int,
    piece_cap: int,
    checkpoint: Checkpoint | None = None,
    enqueue: bool = True,
) -> Evaluation:
    """Evaluate one of the run's policies (default: its best) on the evaluation seeds.

    The games are split into chunks, each a task on the `evaluate` queue, handed out once
    the transaction commits (unless `enqueue` is false: the caller plays them itself). The
    owner (or staff) only: it takes the workers' time.
    """
    ensure_can_control(user, run)
    errors = {}
    if not 1 <= games <= MAX_EVALUATION_GAMES:
        errors["games"] = f"must be an integer from 1 to {MAX_EVALUATION_GAMES:,}, got {games}"
    if not 0 <= piece_cap <= MAX_EVALUATION_PIECE_CAP:
        errors["piece_cap"] = (
            f"must be an integer from 0 (none) to {MAX_EVALUATION_PIECE_CAP:,}, got {piece_cap}"
        )
    checkpoint = checkpoint or best_checkpoint(run)
    if checkpoint is None:
        errors["checkpoint"] = f"run {run.pk} has no checkpoint yet"
    if errors:
        raise ConfigError(errors)
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            run=run,
            kind=Evaluation.Kind.REQUESTED,
            status=Evaluation.Status.RUNNING,
            checkpoint=checkpoint,
            episode=checkpoint.episode,
            total_pieces=checkpoint.total_pieces,
            wall_time=checkpoint.wall_time,
            games=games,
            piece_cap=piece_cap,
        )
        size = -(-games // MAX_EVALUATION_CHUNKS)
        chunks = EvaluationChunk.objects.bulk_create(
            EvaluationChunk(
                evaluation=evaluation, index=index, first_game=first, games=min(size, games - first)
            )
            for index, first in enumerate(range(0, games, size))
        )
        chunk_ids = [chunk.pk for chunk in chunks]
        if enqueue:
            transaction.on_commit(lambda: _enqueue_chunks(chunk_ids))
    publish_evaluation(evaluation)
    return evaluation


def _chunk_task_id(chunk_id: int) -> str:
    # One task id per chunk, however often it is sent: the sweep finds it in the queue.
    return f"evaluation-chunk-{chunk_id}"


def _enqueue_chunks(chunk_ids: list[int]) -> None:
    for chunk_id in chunk_ids:
        queues.enqueue(queues.EVALUATE_CHUNK, chunk_id, task_id=_chunk_task_id(chunk_id))


def evaluation_chunk_finish(
    *,
    chunk: EvaluationChunk,
    lines: list[int],
    pieces: list[int],
    ended: list[bool],
    seconds: float,
) -> bool:
    """Store a chunk's games, unless another delivery stored them first; True if these count.

    The last chunk to finish completes the evaluation: its figures and interval come from
    all its games, in game order.
    """
    with transaction.atomic():
        stored = (
            EvaluationChunk.objects.filter(pk=chunk.pk)
            .exclude(status=EvaluationChunk.Status.DONE)
            .update(
                status=EvaluationChunk.Status.DONE,
                lines=lines,
                pieces=pieces,
                ended=ended,
                seconds=seconds,
                heartbeat_at=timezone.now(),
            )
        )
        if not stored:
            return False
        evaluation = Evaluation.objects.select_for_update().get(pk=chunk.evaluation_id)
        done = list(evaluation.chunks.filter(status=EvaluationChunk.Status.DONE))
        evaluation.games_done = sum(c.games for c in done)
        evaluation.seconds = sum(c.seconds for c in done)
        fields = ["games_done", "seconds"]
        complete = evaluation.games_done >= evaluation.games
        if complete and evaluation.status == Evaluation.Status.RUNNING:
            all_lines = [value for c in done for value in c.lines]
            all_ended = [flag for c in done for flag in c.ended]
            evaluation_complete(evaluation, all_lines, all_ended)
            fields += [*events.SCORE_FIELDS, "status", "finished_at"]
        evaluation.save(update_fields=fields)
    transaction.on_commit(lambda: publish_evaluation(evaluation))
    return True


def evaluation_complete(evaluation: Evaluation, lines: list[int], ended: list[bool]) -> None:
    """Set an evaluation's figures and interval from all its games (not saved)."""
    from trainer.rl.confidence import score_interval

    interval = score_interval(lines, ended)
    evaluation.mean_lines = interval.mean
    evaluation.ci95_low = interval.low
    evaluation.ci95_high = interval.high
    evaluation.ended = interval.ended
    evaluation.median_lines = float(statistics.median(lines))
    evaluation.min_lines = min(lines)
    evaluation.max_lines = max(lines)
    evaluation.status = Evaluation.Status.DONE
    evaluation.finished_at = timezone.now()


def evaluation_fail(*, evaluation_id: int, reason: str) -> None:
    """A chunk cannot be played (its checkpoint is gone or unreadable): the evaluation fails."""
    updated = Evaluation.objects.filter(pk=evaluation_id, status=Evaluation.Status.RUNNING).update(
        status=Evaluation.Status.FAILED, error=reason[:10_000], finished_at=timezone.now()
    )
    if updated:
        publish_evaluation(Evaluation.objects.get(pk=evaluation_id))


def evaluation_chunks_requeue_lost(*, stale_after: timedelta = CHUNK_STALE_AFTER) -> list[int]:
    """Hand out again the chunks whose worker stopped beating; return their ids.

    A worker process killed mid-chunk has its task redelivered by Celery (late ack); a
    whole machine lost is found here. A duplicate delivery is harmless: a chunk is stored
    once.
    """
    cutoff = timezone.now() - stale_after
    lost = EvaluationChunk.objects.filter(
        status=EvaluationChunk.Status.RUNNING,
        heartbeat_at__lt=cutoff,
        evaluation__status=Evaluation.Status.RUNNING,
    )
    ids = []
    for chunk in lost:
        requeued = EvaluationChunk.objects.filter(
            pk=chunk.pk, status=EvaluationChunk.Status.RUNNING, heartbeat_at=chunk.heartbeat_at
        ).update(status=EvaluationChunk.Status.PENDING, heartbeat_at=timezone.now())
        if requeued:
            ids.append(chunk.pk)
    if ids:
        log.warning("evaluation chunks %s were lost with their worker: handing them out again", ids)
        _enqueue_chunks(ids)
    return ids


def evaluation_chunks_requeue_unsent(*, after: timedelta = REQUEUE_AFTER) -> list[int]:
    """Send again the chunks of evaluations started longer than `after` ago that wait in
    no queue (their enqueue, on commit, never ran: Redis was down, or the process died
    between the commit and it); return their ids. QueueUnavailable if Redis is down."""
    cutoff = timezone.now() - after
    pending = list(
        EvaluationChunk.objects.filter(
            status=EvaluationChunk.Status.PENDING,
            evaluation__status=Evaluation.Status.RUNNING,
            evaluation__created_at__lt=cutoff,
        )
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff))
        .values_list("pk", flat=True)
    )
    if not pending:
        return []
    waiting = queues.waiting_task_ids(queues.EVALUATE_QUEUE)
    unsent = [pk for pk in pending if _chunk_task_id(pk) not in waiting]
    if unsent:
        log.warning("evaluation chunks %s were in no queue: sent them again", unsent)
        _enqueue_chunks(unsent)
    return unsent


def game_chunks_discard(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete the cem game chunks no run's process waits for any more: those of a run
    that no longer trains, of an attempt that lost the run, or left for `older_than`
    (the process that wrote them died). Return how many were deleted."""
    cutoff = timezone.now() - older_than
    orphans = [
        batch
        for batch, status, task_id, created_at in GameChunk.objects.values_list(
            "batch", "run__status", "run__task_id", "created_at"
        ).distinct()
        if status not in (Run.Status.RUNNING, Run.Status.STOPPING)
        or not batch.startswith(f"{task_id}:")
        or created_at < cutoff
    ]
    if not orphans:
        return 0
    deleted, _ = GameChunk.objects.filter(batch__in=set(orphans)).delete()
    log.warning("deleted %s cem game chunks no run waits for", deleted)
    return deleted


def publish_evaluation(evaluation: Evaluation) -> None:
    """Send the run's viewers an evaluation, new or updated (best effort)."""
    bridge.publish(run_group(evaluation.run_id), EvaluationUpdate(evaluation_summary(evaluation)))


def run_media_dir(run_id: int) -> Path:
    """The folder with a run's checkpoint files."""
    return Path(settings.MEDIA_ROOT) / "runs" / str(run_id)


def publish_status(run: Run, detail: str = "") -> None:
    """Tell the run's viewers its status changed (best effort, never blocks)."""
    # `t` orders status messages that reach a viewer from different processes.
    bridge.publish(run_group(run.pk), RunStatus(run.status, detail, time.time()))


@dataclass(frozen=True)
class PlaySide:
    """One policy a play plays: a run's checkpoint, or a reference controller."""

    run: Run | None = None
    checkpoint: Checkpoint | None = None
    controller: str = ""


BOARD_KEYS = ("width", "height", "randomizer")


def play_side(user: AbstractBaseUser, ref: str) -> PlaySide:
    """A side named `checkpoint:<id>` (one the user may see) or `controller:<name>`;
    RunNotFound for a checkpoint the user may not see, ValueError for anything else."""
    kind, _, value = ref.partition(":")
    if kind == "controller":
        return PlaySide(controller=value)
    if kind == "checkpoint" and value.isdigit():
        checkpoint = Checkpoint.objects.filter(pk=int(value)).first()
        if checkpoint is None:
            raise RunNotFound(f"checkpoint {value} not found")
        return PlaySide(run_for_viewer(user, checkpoint.run_id), checkpoint)
    raise ValueError(f"{ref[:40]!r}: expected checkpoint:<id> or controller:<name>")


def _play_side(user: AbstractBaseUser, side: PlaySide) -> tuple[str, dict]:
    """The side's label and board ({} for a controller, which plays any board); checks
    that the user may see the run."""
    run, checkpoint, controller = side.run, side.checkpoint, side.controller
    if run is not None:
        if not can_see(user, run):
            raise RunNotFound(f"run {run.pk} not found")
        if checkpoint is None or checkpoint.run_id != run.pk:
            raise ValueError(f"run {run.pk} has no such checkpoint")
        label = f"{run.name} · checkpoint at episode {checkpoint.episode:,}"
        return label, {key: run.config.get(key) for key in BOARD_KEYS if key in run.config}
    if controller in plays.REFERENCE_CONTROLLERS:
        return f"{plays.REFERENCE_CONTROLLERS[controller]} (reference controller)", {}
    known = ", ".join(plays.REFERENCE_CONTROLLERS)
    raise ValueError(f"unknown controller {controller!r}; expected one of {known}")


def play_create(
    *,
    user: AbstractBaseUser,
    run: Run | None = None,
    checkpoint: Checkpoint | None = None,
    controller: str = "",
    rival: PlaySide | None = None,
    pps: int = plays.DEFAULT_PPS,
    seed: int | None = None,
) -> plays.PlaySpec:
    """Prepare a play of a run's checkpoint (one the user may see) or a reference controller;
    with `rival`, a second policy plays the same pieces beside it, on the same board.

    Nothing plays yet: the game task starts when the first viewer joins (`play_join`).
    """
    label, board = _play_side(user, PlaySide(run, checkpoint, controller))
    rival_spec = None
    if rival is not None:
        rival_label, rival_board = _play_side(user, rival)
        if board and rival_board and board != rival_board:
            raise ValueError(
                "side by side needs one board: these were trained on "
                f"{_board_text(board)} and {_board_text(rival_board)}"
            )
        board = board or rival_board
        rival_spec = {
            "label": rival_label,
            "run_id": rival.run.pk if rival.run is not None else None,
            "checkpoint_id": rival.checkpoint.pk if rival.checkpoint is not None else None,
            "controller": rival.controller if rival.run is None else "",
        }
    spec = plays.PlaySpec(
        token=plays.new_token(),
        user_id=user.pk,
        label=label,
        width=board.get("width", 10),
        height=board.get("height", 20),
        randomizer=board.get("randomizer", "uniform"),
        seed=secrets.randbelow(2**31) if seed is None else seed,
        pps=plays.clamp_pps(pps),
        run_id=run.pk if run is not None else None,
        checkpoint_id=checkpoint.pk if checkpoint is not None else None,
        controller=controller if run is None else "",
        rival=rival_spec,
    )
    return plays.reuse_or_save(plays.client(), spec)


def _board_text(board: dict) -> str:
    width, height = board.get("width", 10), board.get("height", 20)
    return f"{width} by {height} ({board.get('randomizer', 'uniform')})"


def play_for_viewer(*, user: AbstractBaseUser, token: str) -> plays.PlaySpec:
    """The play, if this user prepared it and may still see its run; else PlayNotFound."""
    spec = plays.load_spec(plays.client(), token)
    if spec is None or not user.is_authenticated or spec.user_id != user.pk:
        raise plays.PlayNotFound("no such play")
    rival_run = spec.rival and spec.rival.get("run_id")
    for run_id in (spec.run_id, rival_run):
        if run_id is not None:
            try:
                run_for_viewer(user, run_id)
            except RunNotFound:
                raise plays.PlayNotFound("no such play") from None
    return spec


def play_join(*, user: AbstractBaseUser, token: str) -> plays.PlaySpec:
    """A viewer joins a play: check access, and hand the game to a worker if none plays it."""
    spec = play_for_viewer(user=user, token=token)
    r = plays.client()
    plays.keep_alive(r, token)
    cap = settings.MAX_LIVE_PLAYS_PER_USER
    if cap and len(plays.live_plays(r, user.pk) - {token}) >= cap:
        raise LimitReached(
            f"you are watching {cap} plays already, the most one user may at once "
            "(MAX_LIVE_PLAYS_PER_USER): close one first"
        )
    if plays.mark_queued(r, token):
        plays.save_status(r, token, {"state": "queued", "detail": "waiting for a worker"})
        queues.enqueue(queues.PLAY_GAME, token)
    plays.note_live(r, user.pk, token)
    return spec
