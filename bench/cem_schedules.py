"""cem's search schedules side by side, over several seeds: which one keeps learning?

Trains the `record` preset under each schedule (`--arm NAME:KEY=VALUE,...`; by default
`decay`, the preset as it is, whose added noise falls to 0 over 120 generations; `floor`, the
same with `cem_noise_floor`; and `cmaes`, CMA-ES in place of the cross-entropy refit, with
Hansen's default of recombining half the population) for `--minutes` each, seed by seed,
two trainings at a time on one thread each (one per core; the arms take turns, so all see
the same load). The first arm is the baseline that the others are compared with.
Training may use a lower board than the preset's 13 rows (`--train-height`), so that a few
minutes hold the hundreds of generations where the schedules differ. Each run's final mean
weights then play `--games` greedy games on the fixed evaluation seeds, on a board
`--eval-height` rows high, cut at `--piece-cap`. Reported per schedule: each seed's mean
lines, their IQM with a stratified bootstrap 95% interval, and the probability that a run
of one schedule beats a run of the other (trainer/rl/aggregate.py).

    .venv/bin/python bench/cem_schedules.py --seeds 4 --minutes 8 --train-height 10 \
        --eval-height 14 --out bench/out/cem-schedules
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_ARMS = [
    "decay:",
    "floor:cem_noise_floor=0.03",
    "cmaes:cem_method=cma_es,cem_elite_fraction=0.5",
]


def parse_arm(text: str) -> tuple[str, dict[str, str]]:
    """`name:key=value,key=value` -> (name, overrides)."""
    name, _, rest = text.partition(":")
    overrides = dict(item.split("=", 1) for item in rest.split(",") if item)
    return name, overrides


def train_and_evaluate(name: str, overrides: dict, seed: int, args: dict) -> dict:
    """One run of one schedule: train, then evaluate its final mean weights."""
    os.environ["OMP_NUM_THREADS"] = "1"
    from trainer.rl import TrainConfig, evaluate, train
    from trainer.rl.checkpoint import load_checkpoint
    from trainer.rl.policies import LinearPolicy

    fixed = {
        "seed": seed,
        "threads": 1,
        "max_minutes": args["minutes"],
        "frames_per_second": 0,
        "eval_every_pieces": 0,
        "checkpoint_every_s": 3_600,
    }
    if args["train_height"]:
        fixed["cem_train_height"] = args["train_height"]
    chosen = TrainConfig.parse_overrides([f"{key}={value}" for key, value in overrides.items()])
    config = TrainConfig.from_preset("record", {**chosen, **fixed})
    out = Path(args["out"]) / name / f"seed-{seed}"
    result = train(config, checkpoint_dir=out)
    state = load_checkpoint(result.checkpoint)["state"]
    mean = state["mean"].double().numpy()
    policy = LinearPolicy(f"{name} seed {seed}", mean, config.cem_features)
    started = time.monotonic()
    evaluation = evaluate(
        policy,
        games=args["games"],
        piece_cap=args["piece_cap"],
        height=args["eval_height"],
        threads=1,
    )
    return {
        "arm": name,
        "seed": seed,
        "generations": int(state["generation"]),
        "weight_std": float(state["std"].double().mean()),
        "train_pieces": result.total_pieces,
        "mean_lines": evaluation.mean_lines,
        "ci95_low": evaluation.ci95_low,
        "ended": evaluation.ended,
        "eval_seconds": time.monotonic() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", action="append", help="NAME:KEY=VALUE,... (repeatable)")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--train-height", type=int, default=10, help="0 = the preset's")
    parser.add_argument("--eval-height", type=int, default=14)
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--piece-cap", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", default="bench/out/cem-schedules")
    args = parser.parse_args()
    arms = [parse_arm(text) for text in (args.arm or DEFAULT_ARMS)]
    settings = {
        key: getattr(args, key)
        for key in ("minutes", "train_height", "eval_height", "games", "piece_cap", "out")
    }
    # Seed by seed, the arms in turns, so that two at once are two arms' runs, mostly.
    jobs = [(name, changes, seed) for seed in range(1, args.seeds + 1) for name, changes in arms]
    rows = []
    with ProcessPoolExecutor(args.processes) as pool:
        futures = [pool.submit(train_and_evaluate, *job, settings) for job in jobs]
        for future in futures:
            rows.append(future.result())
            row = rows[-1]
            print(
                f"{row['arm']} seed {row['seed']}: {row['generations']} generations, "
                f"{row['mean_lines']:,.0f} lines (ci95_low {row['ci95_low']:,.0f})",
                flush=True,
            )

    import numpy as np

    from trainer.rl.aggregate import (
        aggregate,
        probability_of_improvement,
        probability_of_improvement_ci,
    )

    print(
        f"\n`record` preset, {args.minutes:g} min a run on one thread, training on "
        f"{args.train_height or 13} rows; {args.games} games on 10x{args.eval_height}, "
        f"piece cap {args.piece_cap or 'none'}\n"
    )
    print("| schedule | settings | generations | mean lines, seed by seed | IQM [95% CI] |")
    print("|---|---|---:|---|---|")
    scores = {}
    for name, overrides in arms:
        mine = [r for r in rows if r["arm"] == name]
        scores[name] = np.array([r["mean_lines"] for r in mine])
        summary = aggregate(scores[name])
        settings_text = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "as the preset"
        generations = int(np.median([r["generations"] for r in mine]))
        each = ", ".join(f"{s:,.0f}" for s in scores[name])
        interval = f"{summary.iqm:,.0f} [{summary.ci95_low:,.0f}, {summary.ci95_high:,.0f}]"
        print(f"| {name} | {settings_text} | {generations} | {each} | {interval} |")
    names = [name for name, _ in arms]
    for other in names[1:]:
        p = probability_of_improvement(scores[other], scores[names[0]])
        low, high = probability_of_improvement_ci(scores[other], scores[names[0]])
        print(f"\nP({other} > {names[0]}) = {p:.2f} [{low:.2f}, {high:.2f}]")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "schedules.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
