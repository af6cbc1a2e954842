"""The learning targets over many training seeds: does the kept checkpoint clear enough lines?

For each seed: train the preset for a wall-clock budget in this process (as one worker
process would), then evaluate the checkpoint the run kept (`best.pt`, the best of its
periodic evaluations) and, side by side, its latest checkpoint, on the held-out
evaluation seeds with a piece cap. Each score comes with its 95% interval.

    .venv/bin/python bench/learning_targets.py --preset quick --minutes 2 --seeds 1 2 3

Writes one JSON line per seed to --out and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.rl import Callback, TrainConfig, evaluate, train
from trainer.rl.checkpoint import BEST_CHECKPOINT_NAME, CHECKPOINT_NAME
from trainer.rl.events import Evaluation


class Evaluations(Callback):
    """Keeps the run's periodic evaluations."""

    def __init__(self) -> None:
        self.seen: list[Evaluation] = []

    def on_evaluation(self, e: Evaluation) -> None:
        self.seen.append(e)


def score(path: Path, args: argparse.Namespace) -> dict:
    """Evaluate one checkpoint file on the evaluation seeds; its figures and interval."""
    result = evaluate(path, games=args.games, piece_cap=args.piece_cap)
    return {
        name: getattr(result, name)
        for name in ("mean_lines", "ci95_low", "ci95_high", "ended", "games", "seconds")
    }


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    """Train one seed for the budget, then score its kept and its latest checkpoints."""
    overrides = TrainConfig.parse_overrides(args.set)
    config = TrainConfig.from_preset(
        args.preset,
        {"frames_per_second": 0, **overrides, "max_minutes": args.minutes, "seed": seed},
    )
    recorder = Evaluations()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        result = train(config, callbacks=[recorder], checkpoint_dir=out)
        kept = out / BEST_CHECKPOINT_NAME
        row = {
            "seed": seed,
            "pieces": result.total_pieces,
            "episodes": result.episodes,
            "periodic": [e.as_dict() for e in recorder.seen],
            "best_periodic_mean": max((e.mean_lines for e in recorder.seen), default=None),
            "kept": score(kept if kept.exists() else out / CHECKPOINT_NAME, args),
            "latest": score(out / CHECKPOINT_NAME, args) if args.latest else None,
        }
    return row


def cell(figures: dict | None) -> str:
    """A score and its interval, for the table."""
    if figures is None:
        return "-"
    if figures["ci95_high"] is None:
        return f"≥ {figures['ci95_low']:,.0f} (none ended)"
    return (
        f"{figures['mean_lines']:,.0f} ({figures['ci95_low']:,.0f}-{figures['ci95_high']:,.0f}, "
        f"{figures['ended']} of {figures['games']} ended)"
    )


def table(rows: list[dict], threshold: float, bound: bool) -> str:
    """One line per seed, then how many seeds met the target."""
    lines = [
        "| seed | placements | kept: mean (95% CI) | latest: mean (95% CI) "
        "| best periodic evaluation | kept / best periodic |",
        "|---|---|---|---|---|---|",
    ]
    met = 0
    for row in rows:
        kept, best = row["kept"], row["best_periodic_mean"]
        # A kept policy whose games all outlived the cap is at least its lower bound.
        value = kept["mean_lines"] if kept["ci95_high"] is not None else kept["ci95_low"]
        if bound:
            value = kept["ci95_low"]
        met += value >= threshold
        best_text, ratio = (f"{best:,.0f}", f"{value / best:.2f}") if best else ("-", "-")
        lines.append(
            f"| {row['seed']} | {row['pieces']:,} | {cell(kept)} | {cell(row['latest'])} "
            f"| {best_text} | {ratio} |"
        )
    figure = "95% lower bounds" if bound else "kept checkpoints"
    lines.append(f"\n{met} of {len(rows)} seeds' {figure} clear {threshold:,.0f} lines.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--piece-cap", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=1_000)
    parser.add_argument(
        "--bound", action="store_true", help="hold the 95%% lower bound to the threshold"
    )
    parser.add_argument(
        "--latest", action=argparse.BooleanOptionalAction, default=True, help="score it too"
    )
    parser.add_argument("--out", default="bench/out/learning_targets.jsonl")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.node()}, {platform.processor() or platform.machine()}, {vars(args)}")
    rows = []
    with out.open("a") as file:
        for seed in args.seeds:
            started = time.monotonic()
            row = run_seed(seed, args)
            row["seconds"] = time.monotonic() - started
            rows.append(row)
            file.write(json.dumps({"preset": args.preset, "minutes": args.minutes, **row}) + "\n")
            file.flush()
            print(
                f"seed {seed}: kept {cell(row['kept'])}, latest {cell(row['latest'])}", flush=True
            )
    print(table(rows, args.threshold, args.bound))


if __name__ == "__main__":
    main()
