"""A terminal progress bar for training in the foreground."""

from __future__ import annotations

import time

from tqdm import tqdm

from trainer.rl.events import Callback, EpisodeMetrics


class ProgressBar(Callback):
    """Counts episodes and shows lines, best and placements per second."""

    def __init__(self) -> None:
        self.bar = tqdm(unit="game", dynamic_ncols=True)
        self.best = 0
        self.last = 0.0

    def on_episode(self, m: EpisodeMetrics) -> None:
        """Advance by one game; refresh the figures at most twice a second."""
        self.best = max(self.best, m.lines)
        self.bar.update(1)
        if time.monotonic() - self.last >= 0.5:
            self.last = time.monotonic()
            self.bar.set_postfix(
                lines=m.lines, best=self.best, pps=f"{m.placements_per_second:,.0f}"
            )

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
