"""A worker's hold on the run it trains, kept by a side thread.

The run row names its holder (`task_id`). While the worker holds it, a thread:
- stamps `heartbeat_at` with the database's clock every HEARTBEAT_SECONDS, so a long
  training round or clock skew between hosts never looks like a lost worker;
- withholds the heartbeat once the training loop has made no progress for
  RUN_HANG_SECONDS, so a loop that hangs is found by the sweep like a dead worker;
- reads the row every POLL_SECONDS: a stop request is seen there, and so is the end of
  the hold (the run was reaped, stopped for its worker, or resumed under another task id).

The loop learns of both through `check()`, which also records its progress. Every write
the worker makes to the run goes through `held()`, so a worker that lost the run writes
nothing more to it.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import QuerySet
from django.db.models.functions import Now

from trainer.models import Run, RunLost

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
POLL_SECONDS = 0.5


class RunLease:
    """The hold of the worker with `task_id` on run `run_id`; `start()` it, then `close()`."""

    def __init__(self, run_id: int, task_id: str, *, hang_seconds: float | None = None) -> None:
        self.run_id = run_id
        self.task_id = task_id
        self.hang_seconds = settings.RUN_HANG_SECONDS if hang_seconds is None else hang_seconds
        self.stop_requested = False
        self.lost_because = ""
        self._progress_at = time.monotonic()
        self._next_tick = self._next_beat = 0.0
        self._hang_logged = False
        self._inline = False
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-{run_id}", daemon=True)

    @property
    def lost(self) -> bool:
        """Whether the run is no longer this worker's."""
        return bool(self.lost_because)

    def held(self) -> QuerySet[Run]:
        """The run's row while this worker holds it (empty once it does not)."""
        return Run.objects.filter(pk=self.run_id, task_id=self.task_id, status__in=Run.HELD)

    def start(self) -> RunLease:
        """Start the thread that beats and polls.

        Inside a transaction (a caller that has not committed the run, as a test does),
        another connection could not see the run: the loop's own `check()` beats and
        polls instead, as often as the thread would.
        """
        self._inline = connection.in_atomic_block
        if not self._inline:
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread (the worker is done with the run)."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def check(self) -> bool:
        """The loop's poll: true once a stop is requested; RunLost once the run is not ours."""
        self._progress_at = time.monotonic()
        if self._inline and self._progress_at >= self._next_tick:
            self._tick()
            self._next_tick = self._progress_at + POLL_SECONDS
        if self.lost:
            raise RunLost(f"run {self.run_id}: {self.lost_because}")
        return self.stop_requested

    def lose(self, because: str) -> None:
        """Record that the run is no longer this worker's (seen by the next `check`)."""
        if not self.lost:
            log.warning("run %s is no longer this worker's: %s", self.run_id, because)
            self.lost_because = because

    def _keep(self) -> None:
        try:
            while not self._closed.is_set() and not self.lost:
                self._tick()
                self._closed.wait(POLL_SECONDS)
        finally:
            connection.close()

    def _tick(self) -> None:
        """Poll the row; beat if one is due and the loop is making progress."""
        try:
            self._poll()
            now = time.monotonic()
            stalled = now - self._progress_at
            if stalled > self.hang_seconds:
                if not self._hang_logged:
                    log.error(
                        "run %s: the training loop made no progress for %.0f s; its "
                        "heartbeat stops, so the sweep ends it",
                        self.run_id,
                        stalled,
                    )
                    self._hang_logged = True
            elif now >= self._next_beat:
                if not self.held().update(heartbeat_at=Now()):
                    self.lose("it is no longer running under this worker's task")
                self._next_beat = now + HEARTBEAT_SECONDS
        except DatabaseError:
            # A database outage: no beats meanwhile. If it lasts, the sweep fails the run,
            # and the first poll after it sees that.
            log.exception("run %s: heartbeat or poll failed", self.run_id)

    def _poll(self) -> None:
        row = Run.objects.filter(pk=self.run_id).values_list("status", "task_id").first()
        if row is None:
            self.lose("it was deleted")
        elif row[1] != self.task_id:
            self.lose("it was resumed under another task")
        elif row[0] not in Run.HELD:
            self.lose(f"it is {row[0]}")
        elif row[0] == Run.Status.STOPPING:
            self.stop_requested = True
