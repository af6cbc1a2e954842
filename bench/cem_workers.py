"""One cem run spread over the `evaluate` workers: 1 worker process against 2, side by side.

Starts a private Redis, a SQLite database and a real Celery worker on queue `evaluate`,
with `-c 1`, then with `-c 2` (alternated, `--pairs` times), and trains the same run each
time (the `record` preset, seed 1, `cem_chunk_games` games per task) for `--generations`
generations in this process, which only waits for the workers. A run with the same seed
plays the same games whoever plays them, so every arm times the very same generations.
For reference, the run is also trained here with no workers (`cem_chunk_games` 0, two
threads), as a run on one worker process plays. Each worker first plays a short run, so
numba's compilation is not timed.

    .venv/bin/python bench/cem_workers.py --generations 20 --pairs 3 --chunk-games 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.private_stack import evaluate_worker, private_stack

HERE = "here, 2 threads"


def train_once(user: object, config: dict) -> tuple[float, list[float]]:
    """Train a run of `config` to its end in this process; its seconds, and each
    generation's seconds."""
    from trainer import services
    from trainer.models import Metric, Run
    from trainer.runner import run_execute

    run = services.run_create(owner=user, name="bench", preset="record", config=config)
    started = time.monotonic()
    run_execute(run_id=run.pk, worker="bench", task_id=f"bench-{run.pk}")
    seconds = time.monotonic() - started
    run.refresh_from_db()
    if run.status != Run.Status.FINISHED:
        raise RuntimeError(f"run {run.pk} ended {run.status}: {run.error}")
    generations = {
        extra["cem/generation"]: extra["cem/generation_seconds"]
        for extra in Metric.objects.filter(run=run).values_list("extra", flat=True)
    }
    return seconds, [generations[g] for g in sorted(generations)]


def measure(arm: str | int, user: object, args: argparse.Namespace, data_dir: Path) -> dict:
    """Train the benchmark's run on `arm` worker processes (or here); its figures."""
    config = {
        "seed": 1,
        "max_episodes": 100 * args.generations,
        "eval_every_pieces": 0,
        "threads": 2,
        "cem_chunk_games": 0 if arm == HERE else args.chunk_games,
    }
    if arm == HERE:
        seconds, generations = train_once(user, config)
        return {"seconds": seconds, "generations": generations}
    with evaluate_worker(arm, data_dir):
        # Compiled and loaded in every process: one chunk of one game each, twice over.
        warm = {**config, "max_episodes": 8 * arm, "cem_population": 4 * arm}
        train_once(user, {**warm, "cem_chunk_games": 1, "cem_elite_fraction": 0.5})
        seconds, generations = train_once(user, config)
        return {"seconds": seconds, "generations": generations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--chunk-games", type=int, default=2)
    parser.add_argument("--here", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    results: dict[str | int, list[dict]] = {1: [], 2: [], **({HERE: []} if args.here else {})}
    with private_stack("cem-workers-") as data_dir:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        for pair in range(args.pairs):
            for arm in [*((1, 2) if pair % 2 == 0 else (2, 1)), *results.keys() - {1, 2}]:
                result = measure(arm, user, args, data_dir)
                results[arm].append(result)
                print(f"pair {pair + 1}: {arm}: {result['seconds']:.1f} s", flush=True)

    def per_hour(result: dict) -> float:
        return 3600 * args.generations / result["seconds"]

    speedups = [
        per_hour(two) / per_hour(one) for one, two in zip(results[1], results[2], strict=True)
    ]
    print(
        f"\n`record` preset, seed 1, {args.generations} generations of 100 games on 13 rows, "
        f"{args.chunk_games} games per task\n"
    )
    print("| who plays the games | generations per hour, median | each pair | s, median |")
    print("|---|---:|---|---:|")
    for arm, runs in results.items():
        name = arm if arm == HERE else f"{arm} worker process{'es' if arm > 1 else ''}"
        rates = [per_hour(r) for r in runs]
        shown = ", ".join(f"{rate:,.0f}" for rate in rates)
        seconds = statistics.median(r["seconds"] for r in runs)
        print(f"| {name} | {statistics.median(rates):,.0f} | {shown} | {seconds:.1f} |")
    print(f"\nspeed-up, 2 processes / 1, median of pairs: {statistics.median(speedups):.2f}x")
    print(f"each pair: {', '.join(f'{s:.2f}' for s in speedups)}")
    # Generation by generation: the first ones are short and their games very unequal.
    half = args.generations // 2
    later = [
        sum(one["generations"][half:]) / sum(two["generations"][half:])
        for one, two in zip(results[1], results[2], strict=True)
    ]
    print(
        f"speed-up over generations {half + 1} to {args.generations} alone, median of pairs: "
        f"{statistics.median(later):.2f}x (each pair: {', '.join(f'{s:.2f}' for s in later)})"
    )
    for arm, runs in results.items():
        seconds = [f"{s:.1f}" for s in runs[0]["generations"]]
        print(f"seconds a generation, {arm}, first pair: {' '.join(seconds)}")


if __name__ == "__main__":
    main()
