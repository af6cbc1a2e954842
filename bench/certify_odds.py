"""How likely is a policy of a given true mean to certify a 95% lower bound, in a budget?

The record issue's target is a certified lower bound (trainer/rl/confidence.py's censored
exponential interval) of 35,000,000 lines per game from 100 games within about an hour.
This simulates that evaluation for policies whose games last an exponential number of
lines with the given means (a greedy Tetris agent's game lengths are close to
exponential): the piece cap is the one at which the games fit the budget on average, at
the measured placement rate, and each trial draws the games, cuts them at the cap and
computes the bound.

    .venv/bin/python bench/certify_odds.py --means 29e6 35e6 45e6 51e6 60e6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.rl.confidence import mean_interval

PIECES_PER_LINE = 2.5  # 4 cells a piece, 10 a line on the 10-wide board


def cap_for_budget(mean: float, games: int, placements: float) -> float:
    """The cap in lines at which `games` games of exponential lines fit `placements`."""
    low, high = 1.0, 1e12
    for _ in range(100):
        cap = (low * high) ** 0.5
        expected = games * mean * (1.0 - np.exp(-cap / mean)) * PIECES_PER_LINE
        low, high = (cap, high) if expected < placements else (low, cap)
    return cap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--means", type=float, nargs="+", required=True, help="true mean lines")
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.83e6, help="placements per second")
    parser.add_argument("--target", type=float, default=35e6)
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    placements = args.rate * args.hours * 3600
    print(
        f"{args.games} games in {args.hours:g} h at {args.rate:,.0f} placements/s; "
        f"target: 95% lower bound >= {args.target:,.0f}; {args.trials} trials each\n"
    )
    print(
        "| true mean lines | cap (pieces) | games ended (median) | lower bound (median) "
        "| P(bound >= target) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for mean in args.means:
        cap = cap_for_budget(mean, args.games, placements)
        lows, ended = [], []
        for _ in range(args.trials):
            lines = rng.exponential(mean, args.games)
            interval = mean_interval(list(np.minimum(lines, cap)), list(lines < cap))
            lows.append(interval.low)
            ended.append(interval.ended)
        lows_array = np.array(lows)
        print(
            f"| {mean:,.0f} | {cap * PIECES_PER_LINE:,.0f} | {np.median(ended):.0f} "
            f"| {np.median(lows_array):,.0f} | {np.mean(lows_array >= args.target):.2f} |"
        )


if __name__ == "__main__":
    main()
