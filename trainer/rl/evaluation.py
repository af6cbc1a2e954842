"""Greedy evaluation on fixed lists of seeds that training never uses, with a 95% interval."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.rl.confidence import MeanInterval, score_interval
from trainer.rl.events import MAX_REPLAY_PIECES, BestGame, Callback, linear_policy_record
from trainer.rl.policies import (
    LinearPolicy,
    Policy,
    load_policy,
    one_torch_thread,
    play_linear_in_threads,
)
from trainer.tetris import TetrisGame

# Training games draw seeds below this; evaluation seeds start here, so they never overlap.
EVAL_SEED_BASE = 2**31
# A run's periodic evaluations, which choose its best checkpoint, play seeds from here on:
# the evaluation that reports the chosen checkpoint's score never sees the games it was
# chosen on, so the choice does not inflate the score.
SELECTION_SEED_BASE = EVAL_SEED_BASE + 2**30


def evaluation_seeds(games: int) -> list[int]:
    """The fixed evaluation seeds: the same list for every policy and every run."""
    return [EVAL_SEED_BASE + i for i in range(games)]


def selection_seeds(games: int) -> list[int]:
    """The seeds of a run's periodic evaluations, apart from both training and evaluation."""
    return [SELECTION_SEED_BASE + i for i in range(games)]


@dataclass
class EvalResult:
    """Lines per game of a greedy evaluation, with the cap and time it ran under."""

    policy: str
    games: int
    lines: list[int]
    pieces: list[int]
    game_over: list[bool]
    """per game: whether it ended by itself (False: cut short by the cap or the time)"""
    mean_lines: float
    """estimated mean lines per game: lines over all games / games that ended (a cut game is
    right-censored). When no game ended the estimate is unbounded: this is then the lines per
    game played, and `ci95_low` says more"""
    ci95_low: float
    """95% lower bound of the mean (one-sided when no game ended)"""
    ci95_high: float | None
    """95% upper bound of the mean; None when no game ended"""
    ended: int
    """games that ended by themselves, before the cap or the time budget"""
    interval_method: str
    """`exponential` (censored maximum likelihood) or `bootstrap` (the fit was rejected)"""
    median_lines: float
    min_lines: int
    max_lines: int
    piece_cap: int
    seconds: float
    truncated: int
    """games that did not end by themselves: cut by the piece cap or the time budget"""
    time_budget_s: float | None = None
    seeds: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


def evaluate(
    policy: str | Path | Policy,
    *,
    games: int = 20,
    piece_cap: int = 0,
    seeds: Sequence[int] | None = None,
    time_budget_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    width: int = 10,
    height: int = 20,
    randomizer: str = "uniform",
    threads: int = 2,
    callbacks: Sequence[Callback] = (),
    keep_going: Callable[[], bool] = lambda: True,
) -> EvalResult:
    """Play greedy games on fixed seeds, each to game over, `piece_cap` or the time budget.

    Once `keep_going()` is false the games are left where they are, like the time budget
    leaves them. The callbacks get the best game (most lines, the first on ties) as a BestGame.
    """
    if isinstance(policy, str | Path):
        policy = load_policy(policy)
    seeds = list(seeds) if seeds is not None else evaluation_seeds(games)
    boards = [TetrisGame(width, height, randomizer, seed) for seed in seeds]
    start = time.monotonic()
    deadline = start + time_budget_s if time_budget_s else float("inf")
    done = 0

    def game_over(index: int) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(boards))

    histories = [bytearray() for _ in boards]
    if isinstance(policy, LinearPolicy):
        play_linear_in_threads(
            boards,
            [policy.weights] * len(boards),
            policy.feature_set,
            piece_cap=piece_cap,
            threads=threads,
            keep_going=lambda: time.monotonic() < deadline and keep_going(),
            on_game_over=game_over,
        )
    else:
        with one_torch_thread():
            _play_in_lockstep(
                policy,
                boards,
                piece_cap,
                lambda: time.monotonic() < deadline and keep_going(),
                game_over,
                histories,
            )
    lines = [board.lines for board in boards]
    if callbacks:
        best = max(range(len(boards)), key=lambda index: (lines[index], -index))
        board = boards[best]
        if isinstance(policy, LinearPolicy):
            # Played in compiled kernels, which keep no history: play it again, recording.
            again = TetrisGame(width, height, randomizer, board.seed)
            cap = min(board.pieces, MAX_REPLAY_PIECES)
            histories[best] = again.play_linear_recorded(policy.weights, policy.feature_set, cap)
        record = None
        if isinstance(policy, LinearPolicy):
            record = linear_policy_record(policy.weights, policy.feature_set)
        game = BestGame.of("eval", board, histories[best], best + 1, record)
        for callback in callbacks:
            callback.on_best_game(game)
    interval: MeanInterval = score_interval(lines, [board.game_over for board in boards])
    return EvalResult(
        policy=policy.name,
        games=len(boards),
        lines=lines,
        pieces=[board.pieces for board in boards],
        game_over=[board.game_over for board in boards],
        mean_lines=interval.mean,
        ci95_low=interval.low,
        ci95_high=interval.high,
        ended=interval.ended,
        interval_method=interval.method,
        median_lines=statistics.median(lines),
        min_lines=min(lines),
        max_lines=max(lines),
        piece_cap=piece_cap,
        seconds=time.monotonic() - start,
        truncated=sum(not board.game_over for board in boards),
        time_budget_s=time_budget_s,
        seeds=seeds,
    )


def _play_in_lockstep(
    policy: Policy,
    boards: list[TetrisGame],
    piece_cap: int,
    keep_going: Callable[[], bool],
    game_over: Callable[[int], None],
    histories: list[bytearray],
) -> None:
    """Advance all unfinished games one placement at a time, scoring them in one batch.

    Each game's placements go to its history, up to MAX_REPLAY_PIECES.
    """
    active = list(range(len(boards)))
    while active and keep_going():
        for index, action in zip(active, policy.choose([boards[i] for i in active]), strict=True):
            boards[index].step(action)
            if len(histories[index]) < MAX_REPLAY_PIECES:
                histories[index].append(action)
        still = []
        for index in active:
            board = boards[index]
            if board.game_over or (piece_cap and board.pieces >= piece_cap):
                game_over(index)
            else:
                still.append(index)
        active = still
