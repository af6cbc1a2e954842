"""Does a dqn run keep what it learns? Variants of the quick preset over several seeds.

Each run trains for a fixed number of placements (so results do not depend on the machine's
speed or load: training is deterministic given its seed) and evaluates its greedy policy
every `--eval-every` placements on the held-out selection seeds. A run collapses when a
later evaluation falls far below its best one.

    .venv/bin/python bench/dqn_stability.py --seeds 1 2 3 --pieces 250000 \
        --variant off=replay_endings=0 --variant on --variant eps=epsilon_end=0.01

Each variant is NAME or NAME=key=value,key=value (config overrides on the quick preset).
Every run's evaluations go to --out as JSON lines; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.rl import Callback, EpisodeMetrics, TrainConfig, train
from trainer.rl.events import Evaluation

DEFAULT_VARIANTS = ["baseline"]


# A greedy training game that clears fewer lines than this is a lost one: a trained agent
# clears thousands, random placements none.
LOST_GAME_LINES = 10


class Evaluations(Callback):
    """Keeps every periodic evaluation, and counts training games lost early once epsilon
    has annealed (the agent plays greedily, but for `epsilon_end`)."""

    def __init__(self, annealed_after: int) -> None:
        self.annealed_after = annealed_after
        self.seen: list[Evaluation] = []
        self.greedy_games = 0
        self.lost_games = 0

    def on_evaluation(self, e: Evaluation) -> None:
        self.seen.append(e)

    def on_episode(self, m: EpisodeMetrics) -> None:
        if m.total_pieces >= self.annealed_after:
            self.greedy_games += 1
            self.lost_games += m.lines < LOST_GAME_LINES


def parse_variant(text: str) -> tuple[str, dict]:
    """NAME or NAME=key=value,key=value -> (name, overrides)."""
    name, _, rest = text.partition("=")
    items = [item for item in rest.split(",") if item] if rest else []
    return name, TrainConfig.parse_overrides(items)


def run_one(name: str, overrides: dict, seed: int, args: argparse.Namespace) -> dict:
    """Train one seed of one variant; its evaluations and how far it fell from its best."""
    config = TrainConfig.from_preset(
        "quick",
        {
            "frames_per_second": 0,
            "max_pieces": args.pieces,
            "eval_every_pieces": args.eval_every,
            "eval_games": args.eval_games,
            "eval_piece_cap": args.eval_cap,
            **overrides,
            "seed": seed,
        },
    )
    recorder = Evaluations(config.epsilon_decay_pieces)
    started = time.monotonic()
    train(config, callbacks=[recorder])
    means = [e.mean_lines for e in recorder.seen]
    best_index = max(range(len(means)), key=lambda i: (recorder.seen[i].ci95_low, -i))
    best = means[best_index]
    after = means[best_index:]
    return {
        "variant": name,
        "seed": seed,
        "seconds": time.monotonic() - started,
        "evaluations": [e.as_dict() for e in recorder.seen],
        "best": best,
        "final": means[-1],
        "worst_after_best": min(after),
        "final_over_best": means[-1] / best if best else 0.0,
        "greedy_games": recorder.greedy_games,
        "lost_games": recorder.lost_games,
    }


def summary(rows: list[dict]) -> str:
    """A markdown table: one line per variant."""
    lines = [
        "| variant | seeds | best eval (median) | final eval (median) | final / best, each seed "
        "| seeds whose final < 20% of best | training games lost (< 10 lines) once "
        "epsilon annealed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(row["variant"] for row in rows):
        mine = [row for row in rows if row["variant"] == name]
        ratios = ", ".join(f"{row['final_over_best']:.2f}" for row in mine)
        collapsed = sum(row["final_over_best"] < 0.2 for row in mine)
        lines.append(
            f"| {name} | {len(mine)} | {statistics.median(r['best'] for r in mine):,.0f} "
            f"| {statistics.median(r['final'] for r in mine):,.0f} | {ratios} "
            f"| {collapsed} of {len(mine)} "
            f"| {sum(r['lost_games'] for r in mine)} of {sum(r['greedy_games'] for r in mine)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", help="NAME[=key=value,...]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--pieces", type=int, default=250_000)
    parser.add_argument("--eval-every", type=int, default=50_000)
    parser.add_argument("--eval-games", type=int, default=10)
    parser.add_argument("--eval-cap", type=int, default=20_000)
    parser.add_argument("--out", default="bench/results/dqn_stability.jsonl")
    args = parser.parse_args()
    variants = [parse_variant(text) for text in args.variant or DEFAULT_VARIANTS]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with out.open("a") as file:
        for name, overrides in variants:
            for seed in args.seeds:
                row = run_one(name, overrides, seed, args)
                rows.append(row)
                file.write(json.dumps(row) + "\n")
                file.flush()
                print(
                    f"{name} seed {seed}: best {row['best']:,.0f}, final {row['final']:,.0f}, "
                    f"evaluations {[round(e['mean_lines']) for e in row['evaluations']]}, "
                    f"lost {row['lost_games']} of {row['greedy_games']} games after annealing "
                    f"({row['seconds']:.0f} s)",
                    flush=True,
                )
    print(summary(rows))


if __name__ == "__main__":
    main()
