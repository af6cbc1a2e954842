"""What a training run reports while it runs: metric events, frames, checkpoints, best games."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # web processes import this module and must not load the engine
    from trainer.rl.batches import PlayedGame
    from trainer.tetris import TetrisGame


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
    piece: str = ""
    """the piece to place now, whose options these are"""
    options: list[dict[str, Any]] | None = None
    """what the policy weighed for `piece` (trainer/rl/options.py), sent only while a
    callback wants them"""


# A replay longer than this keeps only its first placements (a byte each).
MAX_REPLAY_PIECES = 100_000


@dataclass
class BestGame:
    """A game that beat the best so far, as its seed and placements: enough to replay it.

    `TetrisGame(width, height, randomizer, seed)` stepped through `actions` (one byte per
    placement, `rotation * width + column`) plays it again; a game longer than
    MAX_REPLAY_PIECES keeps its first placements, while `pieces` counts them all.
    """

    kind: str
    """`train` (a training game) or `eval` (a greedy evaluation game)"""
    seed: int
    width: int
    height: int
    randomizer: str
    actions: bytes
    lines: int
    score: int
    pieces: int
    episode: int
    """the training game's episode, or the evaluation game's number (from 1)"""
    policy: dict[str, Any] | None = None
    """a linear policy that played it, `{"kind": "linear", "feature_set", "weights"}`, so a
    replay can show what it weighed at each placement; None for a value network, which
    changes while it trains"""

    @classmethod
    def of(
        cls,
        kind: str,
        game: TetrisGame | PlayedGame,
        actions: Sequence[int],
        episode: int,
        policy: dict[str, Any] | None = None,
    ) -> BestGame:
        """The record of a finished game whose placements were `actions`."""
        return cls(
            kind=kind,
            seed=game.seed,
            width=game.width,
            height=game.height,
            randomizer=game.randomizer,
            actions=bytes(map(int, actions[:MAX_REPLAY_PIECES])),
            lines=game.lines,
            score=game.score,
            pieces=game.pieces,
            episode=episode,
            policy=policy,
        )


def linear_policy_record(weights: Sequence[float], feature_set: str) -> dict[str, Any]:
    """A linear policy as a best game keeps it (JSON-safe)."""
    return {"kind": "linear", "feature_set": feature_set, "weights": [float(w) for w in weights]}


@dataclass
class CheckpointInfo:
    """A checkpoint that was just written."""

    path: Path
    episode: int
    total_pieces: int
    wall_time: float
    kind: str = "latest"
    """`latest` (the learner's whole state, to resume from) or `best` (the best-evaluated
    greedy policy so far, to play and evaluate)"""


# An evaluated score's figures, wherever one is stored or shown.
SCORE_FIELDS = (
    "mean_lines",
    "ci95_low",
    "ci95_high",
    "ended",
    "median_lines",
    "min_lines",
    "max_lines",
)


@dataclass
class Evaluation:
    """A periodic evaluation of the run's greedy policy on held-out seeds."""

    episode: int
    total_pieces: int
    wall_time: float
    games: int
    piece_cap: int
    mean_lines: float
    """estimated mean lines per game (cut games counted as censored)"""
    ci95_low: float
    ci95_high: float | None
    """None when no game ended: the mean has only a lower bound"""
    ended: int
    median_lines: float
    min_lines: int
    max_lines: int
    seconds: float
    best: bool
    """whether this policy became the run's best, kept as its `best` checkpoint"""

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return dataclasses.asdict(self)


class Callback:
    """Receives a run's events; every method is a no-op until a subclass overrides it."""

    def on_episode(self, m: EpisodeMetrics) -> None:
        """Called after every training game."""

    def on_frame(self, f: Frame) -> None:
        """Called with a board frame, at most `frames_per_second` times a second."""

    def wants_options(self) -> bool:
        """Whether the next frames are to carry the policy's options (someone looks at them).

        Asked once per frame; it must answer at once, never wait on I/O.
        """
        return False

    def on_checkpoint(self, c: CheckpointInfo) -> None:
        """Called after a checkpoint is safely on disk."""

    def on_best_game(self, g: BestGame) -> None:
        """Called when a game beats the best so far (the first game always does)."""

    def on_evaluation(self, e: Evaluation) -> None:
        """Called after each periodic evaluation, before its `best` checkpoint (if any)."""
