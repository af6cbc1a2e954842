"""What a training run reports while it runs: metric events, board frames and checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EpisodeMetrics:
    """One finished training game, with the learner's state at that moment."""

    episode: int
    lines: int
    score: int
    pieces: int
    reward: float
    loss: float | None
    epsilon: float | None
    placements_per_second: float
    total_pieces: int
    wall_time: float
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Flat JSON-safe dict; `extra` keys sit beside the fixed ones."""
        values = dataclasses.asdict(self)
        return {**values.pop("extra"), **values}


@dataclass
class Frame:
    """A board as the agent plays it: rows from the top, '.' empty or a piece letter."""

    episode: int
    board: str
    next: str
    lines: int
    score: int
    pieces: int


@dataclass
class CheckpointInfo:
    """A checkpoint that was just written."""

    path: Path
    episode: int
    total_pieces: int
    wall_time: float


class Callback:
    """Receives a run's events; every method is a no-op until a subclass overrides it."""

    def on_episode(self, m: EpisodeMetrics) -> None:
        """Called after every training game."""

    def on_frame(self, f: Frame) -> None:
        """Called with a board frame, at most `frames_per_second` times a second."""

    def on_checkpoint(self, c: CheckpointInfo) -> None:
        """Called after a checkpoint is safely on disk."""
