"""The training loop's link to the browsers: board frames and metric batches of one run.

It runs in the worker and never blocks training: frames are latest-only, at a capped
rate, and metrics go out a few times a second, each through the bridge, which drops
messages instead of waiting when Redis is slow or down.
"""

from __future__ import annotations

import time

from live import bridge
from live.names import run_group
from live.protocol import Frame, Metrics
from trainer.rl.events import Callback, EpisodeMetrics
from trainer.rl.events import Frame as BoardFrame

METRICS_PER_SECOND = 4.0


class RunPublisher(Callback):
    """Publishes one run's frames and metrics to its group."""

    def __init__(self, run_id: int, *, frames_per_second: float = 15.0) -> None:
        self.group = run_group(run_id)
        self.frame_interval = 1.0 / frames_per_second if frames_per_second > 0 else None
        self.seq = 0
        self.last_frame = 0.0
        self.pending: list[dict] = []
        self.last_metrics = 0.0

    def on_frame(self, f: BoardFrame) -> None:
        """Publish the latest board, at most `frames_per_second` times a second."""
        if self.frame_interval is None:
            return
        now = time.monotonic()
        if now - self.last_frame < self.frame_interval:
            return
        self.last_frame = now
        self.seq += 1
        bridge.publish(
            self.group,
            Frame(
                seq=self.seq,
                t=time.time(),
                episode=f.episode,
                board=f.board,
                next=f.next,
                lines=f.lines,
                score=f.score,
                pieces=f.pieces,
                piece=f.piece or None,
                options=f.options,
            ),
        )

    def wants_options(self) -> bool:
        """Whether a viewer has the overlay on (asked of Redis in the background)."""
        return bridge.options_wanted(self.group)

    def on_episode(self, m: EpisodeMetrics) -> None:
        """Batch metric points and send them a few times a second."""
        self.pending.append(m.as_dict())
        if time.monotonic() - self.last_metrics >= 1.0 / METRICS_PER_SECOND:
            self.flush()

    def flush(self) -> None:
        """Send the buffered metric points now."""
        if self.pending:
            bridge.publish(self.group, Metrics(points=self.pending))
            self.pending = []
        self.last_metrics = time.monotonic()
