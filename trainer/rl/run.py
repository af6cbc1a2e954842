"""The bookkeeping both algorithms share: counters, budgets, stop polling, frames, checkpoints."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.rl.batches import BatchPlayer, LinearBatch, PlayedBatch, PlayedGame, play_here
from trainer.rl.checkpoint import BEST_CHECKPOINT_NAME, CHECKPOINT_NAME, save_checkpoint
from trainer.rl.config import TrainConfig
from trainer.rl.evaluation import EvalResult, evaluate, selection_seeds
from trainer.rl.events import (
    SCORE_FIELDS,
    BestGame,
    Callback,
    CheckpointInfo,
    EpisodeMetrics,
    Evaluation,
    Frame,
)
from trainer.rl.policies import Policy
from trainer.tetris import PIECE_NAMES, TetrisGame

# Training games draw their seeds below this bound; evaluation seeds lie above it.
TRAIN_SEED_LIMIT = 2**31
STOP_POLL_S = 0.25
RECENT_EPISODES = 100
# What a periodic evaluation reports of its EvalResult.
EVALUATION_FIGURES = ("games", "piece_cap", *SCORE_FIELDS, "seconds")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stops and writes no checkpoint."""


@dataclass
class TrainResult:
    """How a run ended."""

    episodes: int
    total_pieces: int
    best_lines: int
    recent_mean_lines: float
    wall_time: float
    stopped: bool
    checkpoint: Path | None
    best_checkpoint: Path | None = None
    """the best-evaluated policy's checkpoint; None if no evaluation ran"""
    best_evaluation: float | None = None
    """the 95% lower bound of that policy's mean lines per game in its periodic evaluation"""


# A checkpoint is never due sooner than this many times the time the last one took.
CHECKPOINT_TIME_FACTOR = 20.0


class RunContext:
    """A run's counters, budgets, stop polling, frame pacing, metrics and checkpoints."""

    def __init__(
        self,
        config: TrainConfig,
        callbacks: Sequence[Callback],
        should_stop: Callable[[], bool],
        checkpoint_dir: Path | None,
        progress: dict[str, Any] | None,
        batch_player: BatchPlayer | None = None,
    ) -> None:
        self.config = config
        self._batch_player = batch_player
        self.callbacks = list(callbacks)
        self.should_stop = should_stop
        self.checkpoint_file = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir else None
        self.best_file = checkpoint_dir / BEST_CHECKPOINT_NAME if checkpoint_dir else None
        progress = progress or {}
        self.episodes: int = progress.get("episodes", 0)
        self.total_pieces: int = progress.get("total_pieces", 0)
        self.best_lines: int = progress.get("best_lines", 0)
        self.recent_lines: deque[int] = deque(progress.get("recent_lines", []), RECENT_EPISODES)
        self._wall_time_before = progress.get("wall_time", 0.0)
        self._started = time.monotonic()
        self._pieces_at_start = self.total_pieces
        self._next_poll = 0.0
        self._next_frame = 0.0
        self._next_checkpoint = self._started + config.checkpoint_every_s
        self._next_evaluation = self.total_pieces + config.eval_every_pieces
        self.best_evaluation: float | None = progress.get("best_evaluation")
        # how many of the kept policy's evaluation games ended before the cap
        self.best_ended: int | None = progress.get("best_ended")
        self.stop_requested = False
        self.last_checkpoint: Path | None = None
        self.best_checkpoint: Path | None = None

    @property
    def wall_time(self) -> float:
        """Seconds of training in this run, across resumes."""
        return self._wall_time_before + time.monotonic() - self._started

    def placements_per_second(self) -> float:
        """Placements per second since this process started on the run."""
        elapsed = time.monotonic() - self._started
        return (self.total_pieces - self._pieces_at_start) / elapsed if elapsed > 0 else 0.0

    def finished(self) -> bool:
        """Whether the run must end now: a stop was requested or a budget is spent."""
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + STOP_POLL_S
            self.stop_requested = self.stop_requested or bool(self.should_stop())
        config = self.config
        return (
            self.stop_requested
            or bool(config.max_minutes and self.wall_time >= config.max_minutes * 60)
            or bool(config.max_episodes and self.episodes >= config.max_episodes)
            or bool(config.max_pieces and self.total_pieces >= config.max_pieces)
        )

    def new_game(self, rng: np.random.Generator, height: int | None = None) -> TetrisGame:
        """A fresh training game with a seed from `rng` (never an evaluation seed)."""
        config = self.config
        return TetrisGame(config.width, height or config.height, config.randomizer, new_seed(rng))

    def play_batch(self, batch: LinearBatch, keep_going: Callable[[], bool]) -> PlayedBatch | None:
        """Play a batch of greedy games: through the run's batch player if it has one (other
        processes), else here on `threads` threads. None once `keep_going()` is false."""
        if self._batch_player is not None:
            return self._batch_player(batch, keep_going)
        return play_here(batch, threads=self.config.threads, keep_going=keep_going)

    def frame_due(self) -> bool:
        """Whether a board frame is due now (a clock read; never true with frames off)."""
        return bool(self.config.frames_per_second) and time.monotonic() >= self._next_frame

    def send_frame(
        self, game: TetrisGame, options: Callable[[], list[dict[str, Any]]] | None = None
    ) -> None:
        """Send the game's board to the callbacks and start the wait for the next frame.

        `options()` gives what the policy weighs for the current piece; it is called only
        while a callback wants them, so a run nobody inspects pays nothing for them.
        """
        self._next_frame = time.monotonic() + 1.0 / self.config.frames_per_second
        wanted = options is not None and any(c.wants_options() for c in self.callbacks)
        frame = Frame(
            episode=self.episodes + 1,
            board=game.board_string(),
            next=PIECE_NAMES[game.next_piece],
            lines=game.lines,
            score=game.score,
            pieces=game.pieces,
            piece="" if game.game_over else PIECE_NAMES[game.current_piece],
            options=options() if wanted else None,
        )
        for callback in self.callbacks:
            callback.on_frame(frame)

    def end_episode(
        self,
        game: TetrisGame | PlayedGame,
        reward: float,
        loss: float | None,
        epsilon: float | None,
        extra: dict[str, float] | None = None,
        replay: Callable[[], Sequence[int]] | None = None,
        policy: dict[str, Any] | None = None,
    ) -> None:
        """Count a finished training game and report it.

        `replay()` gives the game's placements; it is called only for a game that beats the
        run's best so far, which is then reported as a BestGame (with `policy`, the linear
        policy that played it, if one did).
        """
        is_best = self.episodes == 0 or game.lines > self.best_lines
        self.episodes += 1
        self.best_lines = max(self.best_lines, game.lines)
        self.recent_lines.append(game.lines)
        metrics = EpisodeMetrics(
            episode=self.episodes,
            lines=game.lines,
            score=game.score,
            pieces=game.pieces,
            reward=float(reward),
            loss=loss,
            epsilon=epsilon,
            placements_per_second=self.placements_per_second(),
            total_pieces=self.total_pieces,
            wall_time=self.wall_time,
            extra=extra or {},
        )
        for callback in self.callbacks:
            callback.on_episode(metrics)
        if is_best and replay is not None:
            best = BestGame.of("train", game, replay(), self.episodes, policy)
            for callback in self.callbacks:
                callback.on_best_game(best)

    def checkpoint_due(self) -> bool:
        """Whether `checkpoint_every_s` has passed since the last checkpoint."""
        return self.checkpoint_file is not None and time.monotonic() >= self._next_checkpoint

    def save(self, state: dict[str, Any], policy: dict[str, Any]) -> Path | None:
        """Write a checkpoint of the learner's `state` and greedy `policy`, then tell callbacks.

        The next is due after `checkpoint_every_s`, or after CHECKPOINT_TIME_FACTOR times
        what this one took if that is longer: a big network checkpointed every second
        spends at most 1/CHECKPOINT_TIME_FACTOR of the run writing (and fsyncing) files.
        """
        started = time.monotonic()
        self._next_checkpoint = started + self.config.checkpoint_every_s
        if self.checkpoint_file is None:
            return None
        self.last_checkpoint = self._write(self.checkpoint_file, "latest", state, policy)
        took = time.monotonic() - started
        self._next_checkpoint = max(self._next_checkpoint, started + CHECKPOINT_TIME_FACTOR * took)
        return self.last_checkpoint

    def _write(
        self, path: Path, kind: str, state: dict[str, Any] | None, policy: dict[str, Any]
    ) -> Path:
        wall_time = self.wall_time
        payload = {
            "config": self.config.to_dict(),
            "progress": {
                "episodes": self.episodes,
                "total_pieces": self.total_pieces,
                "best_lines": self.best_lines,
                "recent_lines": list(self.recent_lines),
                "wall_time": wall_time,
                "best_evaluation": self.best_evaluation,
                "best_ended": self.best_ended,
            },
            "state": state,
            "policy": policy,
        }
        written = save_checkpoint(payload, path)
        info = CheckpointInfo(written, self.episodes, self.total_pieces, wall_time, kind)
        for callback in self.callbacks:
            callback.on_checkpoint(info)
        return written

    def evaluation_due(self) -> bool:
        """Whether `eval_every_pieces` placements have passed since the last evaluation."""
        every = self.config.eval_every_pieces
        return bool(every) and self.total_pieces >= self._next_evaluation

    def evaluate(self, policy: Policy, spec: dict[str, Any]) -> EvalResult | None:
        """Evaluate the greedy `policy` on the selection seeds; keep it if it ranks best yet.

        `spec` is the policy as a checkpoint stores it. An evaluation cut short by a stop or
        the budget is dropped (None): its games did not all get their chance.
        """
        config = self.config
        self._next_evaluation = self.total_pieces + config.eval_every_pieces
        result = evaluate(
            policy,
            seeds=selection_seeds(config.eval_games),
            piece_cap=config.eval_piece_cap,
            width=config.width,
            height=config.height,
            randomizer=config.randomizer,
            threads=config.threads,
            keep_going=lambda: not self.finished(),
        )
        if self.finished():
            return None
        # Ranked by the 95% lower bound: with games cut at the cap the estimate can be
        # unbounded, and a policy whose every game outlived the cap beats one that lost one.
        # Two policies that both outlived the cap in every game cannot be told apart (their
        # bounds differ only by the lines cleared within the cap): the newer one, trained
        # longer, is kept. Ranked by that noise, a record run kept whichever policy
        # happened to clear a few more lines within the cap.
        unranked = result.ended == 0 and self.best_ended == 0
        best = self.best_evaluation is None or result.ci95_low > self.best_evaluation or unranked
        if best:
            self.best_ended = result.ended
            self.best_evaluation = result.ci95_low
        figures = {name: getattr(result, name) for name in EVALUATION_FIGURES}
        report = Evaluation(
            episode=self.episodes,
            total_pieces=self.total_pieces,
            wall_time=self.wall_time,
            best=best,
            **figures,
        )
        for callback in self.callbacks:
            callback.on_evaluation(report)
        if best and self.best_file is not None:
            self.best_checkpoint = self._write(self.best_file, "best", None, spec)
        return result

    def result(self) -> TrainResult:
        """The run's outcome so far."""
        recent = statistics.fmean(self.recent_lines) if self.recent_lines else 0.0
        return TrainResult(
            episodes=self.episodes,
            total_pieces=self.total_pieces,
            best_lines=self.best_lines,
            recent_mean_lines=recent,
            wall_time=self.wall_time,
            stopped=self.stop_requested,
            checkpoint=self.last_checkpoint,
            best_checkpoint=self.best_checkpoint,
            best_evaluation=self.best_evaluation,
        )


def new_seed(rng: np.random.Generator) -> int:
    """A training game's seed from `rng` (never an evaluation seed)."""
    return int(rng.integers(TRAIN_SEED_LIMIT))


def numpy_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A Generator's state as plain data a weights-only checkpoint can hold."""
    return rng.bit_generator.state


def restore_numpy_rng(state: dict[str, Any]) -> np.random.Generator:
    """A Generator continuing from `numpy_rng_state`'s output."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng
