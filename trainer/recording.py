"""The training loop's link to the database: metrics, summary, checkpoints, stop requests.

It runs in the worker. Metrics are written in batches at most once a second, and only
while the worker holds the run (`trainer.lease`): the summary UPDATE is filtered on the
holder, and the metrics go in the same transaction, so a worker that lost the run writes
nothing. The heartbeat and the stop poll are the lease's side thread.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from django.conf import settings
from django.db import DatabaseError, transaction

from trainer import services
from trainer.lease import RunLease
from trainer.models import Metric, Run, RunLost
from trainer.rl.events import BestGame, Callback, CheckpointInfo, EpisodeMetrics, Evaluation
from trainer.selectors import METRIC_FIELDS

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
RECENT_EPISODES = 100
CURVE_POINTS = 64


class CheckpointTooLarge(Exception):
    """A checkpoint is larger than MAX_CHECKPOINT_MB: the run ends, failed, saying so."""


class Curve:
    """A fixed-size learning curve: buckets of episodes that double in width as it grows."""

    def __init__(self, points: list[list[float]] | None = None) -> None:
        self.points = [list(p) for p in points or []]  # [last episode, mean lines, count]

    def add(self, episode: int, lines: float) -> None:
        """Add one episode; merge neighbouring buckets when there are too many."""
        width = max(1, int(self.points[0][2])) if self.points else 1
        if self.points and self.points[-1][2] < width:
            last = self.points[-1]
            last[1] = (last[1] * last[2] + lines) / (last[2] + 1)
            last[0], last[2] = episode, last[2] + 1
        else:
            self.points.append([episode, float(lines), 1])
        if len(self.points) > CURVE_POINTS:
            merged = []
            for i in range(0, len(self.points) - 1, 2):
                a, b = self.points[i], self.points[i + 1]
                count = a[2] + b[2]
                merged.append([b[0], (a[1] * a[2] + b[1] * b[2]) / count, count])
            if len(self.points) % 2:
                merged.append(self.points[-1])
            self.points = merged


class BestGameRecorder(Callback):
    """Keeps a run's best games (training or evaluation) for replays."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id

    def on_best_game(self, g: BestGame) -> None:
        """Store the game if it beats the run's best of its kind; a database error only logs."""
        try:
            services.run_record_best_game(run_id=self.run_id, game=g)
        except DatabaseError:
            log.exception("could not store the best %s game of run %s", g.kind, self.run_id)


class RunRecorder(BestGameRecorder):
    """Writes a run's metrics, summary, checkpoints and best games; answers `should_stop`."""

    def __init__(self, run: Run, lease: RunLease) -> None:
        super().__init__(run.pk)
        self.run = run
        self.lease = lease
        self.pending: list[Metric] = []
        self.recent: deque[int] = deque(maxlen=RECENT_EPISODES)
        self.curve = Curve(run.curve)
        self.base_wall_time = run.wall_time
        self.last_flush = time.monotonic()
        # Metric rows stored per second at most (a token bucket a second deep): a tiny board
        # can end thousands of games a second, and each would be a row.
        self.rows_per_second = settings.MAX_METRIC_ROWS_PER_SECOND
        self.row_tokens = float(self.rows_per_second)
        self.row_clock = time.monotonic()
        self.rows_skipped = 0

    def on_episode(self, m: EpisodeMetrics) -> None:
        """Buffer the episode (within the row budget); write the buffer when a second has
        passed. The run's counts, best, recent mean and curve count every episode."""
        if self._take_row():
            values = m.as_dict()
            extra = {k: v for k, v in values.items() if k not in METRIC_FIELDS}
            self.pending.append(
                Metric(run_id=self.run.pk, extra=extra, **{k: values[k] for k in METRIC_FIELDS})
            )
        self.recent.append(m.lines)
        self.curve.add(m.episode, m.lines)
        self.run.episodes = max(self.run.episodes, m.episode)
        self.run.total_pieces = m.total_pieces
        self.run.best_lines = max(self.run.best_lines, m.lines)
        self.run.recent_mean_lines = sum(self.recent) / len(self.recent)
        self.run.wall_time = self.base_wall_time + m.wall_time
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def _take_row(self) -> bool:
        if not self.rows_per_second:
            return True
        now = time.monotonic()
        self.row_tokens = min(
            self.rows_per_second, self.row_tokens + (now - self.row_clock) * self.rows_per_second
        )
        self.row_clock = now
        if self.row_tokens >= 1:
            self.row_tokens -= 1
            return True
        if not self.rows_skipped:
            log.warning(
                "run %s ends more than %s games a second: only that many metric rows are "
                "stored per second (MAX_METRIC_ROWS_PER_SECOND)",
                self.run.pk,
                self.rows_per_second,
            )
        self.rows_skipped += 1
        return False

    def flush(self) -> None:
        """Write buffered metrics and the run's summary; RunLost if the run is not ours."""
        batch, self.pending = self.pending, []
        try:
            with transaction.atomic():
                # The summary first: its UPDATE is filtered on the holder, and locks the row.
                if not self._save_summary():
                    self.lease.lose("its summary could not be written under this task")
                elif batch:
                    # ignore_conflicts: episodes replayed after a resume are already stored.
                    Metric.objects.bulk_create(batch, ignore_conflicts=True, batch_size=500)
        except DatabaseError:
            # Keep the rows for the next attempt rather than lose them.
            self.pending = batch + self.pending
            log.exception("could not write metrics for run %s; will retry", self.run.pk)
        self.last_flush = time.monotonic()
        if self.lease.lost:
            raise RunLost(f"run {self.run.pk}: {self.lease.lost_because}")

    def _save_summary(self) -> bool:
        self.run.curve = self.curve.points
        return bool(
            self.lease.held().update(
                episodes=self.run.episodes,
                total_pieces=self.run.total_pieces,
                best_lines=self.run.best_lines,
                recent_mean_lines=self.run.recent_mean_lines,
                wall_time=self.run.wall_time,
                curve=self.run.curve,
            )
        )

    def should_stop(self) -> bool:
        """Polled by the loop: true once a stop was requested; RunLost once the run is not
        this worker's. Writes what is buffered once a second has passed."""
        stop = self.lease.check()
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS and self.pending:
            self.flush()
        return stop

    def on_checkpoint(self, c: CheckpointInfo) -> None:
        """Keep a snapshot of the checkpoint and list it; prune the oldest. A checkpoint
        past MAX_CHECKPOINT_MB ends the run (CheckpointTooLarge)."""
        limit = settings.MAX_CHECKPOINT_MB * 2**20
        size = c.path.stat().st_size
        if limit and size > limit:
            c.path.unlink(missing_ok=True)
            raise CheckpointTooLarge(
                f"a checkpoint of {size / 2**20:,.0f} MB is larger than the "
                f"{settings.MAX_CHECKPOINT_MB:,} MB allowed (MAX_CHECKPOINT_MB): "
                "use a smaller network (hidden_size) or buffer"
            )
        services.run_record_checkpoint(
            run_id=self.run.pk,
            info=c,
            wall_time=self.base_wall_time + c.wall_time,
            holder=self.lease.task_id,
        )

    def on_evaluation(self, e: Evaluation) -> None:
        """Store the periodic evaluation (a database error only logs: training goes on)."""
        try:
            services.run_record_evaluation(run_id=self.run.pk, report=e)
        except DatabaseError:
            log.exception("could not store an evaluation of run %s", self.run.pk)
