"""A batch of greedy linear games, as a cem generation plays them, and who plays it.

A batch is plain data (board, feature set, one seed and one weight vector per game, the
piece cap), so any process can play any slice of it and get the very games this one would:
the engine is deterministic given a seed. `play_here` plays a batch on this process's
threads; a `BatchPlayer` given to `train()` may hand it to other processes instead
(trainer/spread.py sends slices of it to the Celery workers of the `evaluate` queue).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from trainer.rl.policies import play_linear_in_threads
from trainer.tetris import TetrisGame


@dataclass(frozen=True)
class LinearBatch:
    """Games to play greedily to their end or `piece_cap`, game i with `weights[i]`."""

    width: int
    height: int
    randomizer: str
    feature_set: str
    piece_cap: int
    seeds: tuple[int, ...]
    weights: np.ndarray
    """one row of weights per game"""

    def __len__(self) -> int:
        return len(self.seeds)

    def part(self, start: int, stop: int) -> LinearBatch:
        """Games start to stop-1 of this batch."""
        return LinearBatch(
            self.width,
            self.height,
            self.randomizer,
            self.feature_set,
            self.piece_cap,
            self.seeds[start:stop],
            self.weights[start:stop],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; floats keep every bit (JSON writes their shortest exact repr)."""
        return {
            "width": self.width,
            "height": self.height,
            "randomizer": self.randomizer,
            "feature_set": self.feature_set,
            "piece_cap": self.piece_cap,
            "seeds": list(self.seeds),
            "weights": [[float(w) for w in row] for row in self.weights],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearBatch:
        """The batch `to_dict` wrote."""
        return cls(
            int(data["width"]),
            int(data["height"]),
            str(data["randomizer"]),
            str(data["feature_set"]),
            int(data["piece_cap"]),
            tuple(int(seed) for seed in data["seeds"]),
            np.asarray(data["weights"], dtype=np.float64),
        )


@dataclass(frozen=True)
class PlayedGame:
    """How one game of a batch ended: what a training episode reports and a replay needs."""

    seed: int
    width: int
    height: int
    randomizer: str
    lines: int
    score: int
    pieces: int
    game_over: bool


@dataclass(frozen=True)
class PlayedBatch:
    """A batch's games, in batch order, and how many processes played them."""

    games: list[PlayedGame]
    workers: int


class BatchPlayer(Protocol):
    """Plays a whole batch, polling `keep_going`; None once it returns False."""

    def __call__(
        self, batch: LinearBatch, keep_going: Callable[[], bool]
    ) -> PlayedBatch | None: ...


def play_here(
    batch: LinearBatch, *, threads: int, keep_going: Callable[[], bool]
) -> PlayedBatch | None:
    """Play the batch on this process's `threads` threads; None if `keep_going` said stop."""
    games = [TetrisGame(batch.width, batch.height, batch.randomizer, seed) for seed in batch.seeds]
    complete = play_linear_in_threads(
        games,
        batch.weights,
        batch.feature_set,
        piece_cap=batch.piece_cap,
        threads=threads,
        keep_going=keep_going,
    )
    if not complete:
        return None
    return PlayedBatch([played(game) for game in games], workers=1)


def played(game: TetrisGame) -> PlayedGame:
    """A finished game's record."""
    return PlayedGame(
        seed=game.seed,
        width=game.width,
        height=game.height,
        randomizer=game.randomizer,
        lines=game.lines,
        score=game.score,
        pieces=game.pieces,
        game_over=game.game_over,
    )
