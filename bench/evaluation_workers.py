"""One evaluation spread over the `evaluate` workers: 1 worker process against 2, side by side.

Starts a private Redis, a SQLite database and a real Celery worker on queue `evaluate`,
with `-c 1`, then with `-c 2` (alternated, `--pairs` times), and times a requested
evaluation of `--games` games of one checkpoint from the request to its last chunk
stored. The checkpoint is Dellacherie's controller on a board `--height` rows high (15:
about a second a game). Each worker first plays one small evaluation, so numba's
compilation is not timed.

    .venv/bin/python bench/evaluation_workers.py --games 20 --pairs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.private_stack import evaluate_worker, private_stack

POLL_SECONDS = 0.1


def make_run(height: int) -> object:
    """A user and a finished run whose best checkpoint is Dellacherie's linear controller."""
    import torch
    from django.contrib.auth import get_user_model

    from trainer import services
    from trainer.models import Checkpoint, Run
    from trainer.rl import TrainConfig
    from trainer.rl.checkpoint import save_checkpoint
    from trainer.tetris import DELLACHERIE_WEIGHTS

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    config = TrainConfig.from_preset("record", {"height": height}).to_dict()
    run = services.run_create(owner=user, name="bench", preset="record", config=config)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FINISHED)
    path = services.run_media_dir(run.pk) / "best-episode-000000001.pt"
    policy = {"kind": "linear", "feature_set": "dellacherie"}
    policy["weights"] = torch.tensor(DELLACHERIE_WEIGHTS)
    save_checkpoint({"config": config, "progress": {}, "state": None, "policy": policy}, path)
    media = services.run_media_dir(run.pk).parent.parent
    Checkpoint.objects.create(
        run=run,
        kind="best",
        file=str(path.relative_to(media)),
        episode=1,
        total_pieces=1,
        wall_time=1.0,
    )
    return run


def time_evaluation(run: object, games: int) -> float:
    """Seconds from the request of an evaluation to its completion on the workers."""
    from trainer import services
    from trainer.models import Evaluation

    started = time.monotonic()
    evaluation = services.evaluation_start(run=run, user=run.owner, games=games, piece_cap=0)
    while True:
        evaluation.refresh_from_db()
        if evaluation.status != Evaluation.Status.RUNNING:
            break
        time.sleep(POLL_SECONDS)
    if evaluation.status != Evaluation.Status.DONE:
        raise RuntimeError(f"evaluation failed: {evaluation.error}")
    return time.monotonic() - started


def measure(run: object, processes: int, args: argparse.Namespace, data_dir: Path) -> float:
    """Start a worker of `processes` processes, warm it up, time one evaluation, stop it."""
    with evaluate_worker(processes, data_dir):
        time_evaluation(run, processes)  # one game per process: compiled and loaded
        return time_evaluation(run, args.games)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--height", type=int, default=15)
    args = parser.parse_args()

    times: dict[int, list[float]] = {1: [], 2: []}
    with private_stack("evaluation-workers-") as data_dir:
        run = make_run(args.height)
        for pair in range(args.pairs):
            for processes in (1, 2) if pair % 2 == 0 else (2, 1):
                seconds = measure(run, processes, args, data_dir)
                times[processes].append(seconds)
                print(f"pair {pair + 1}: {processes} process(es): {seconds:.1f} s", flush=True)
    ratios = [one / two for one, two in zip(times[1], times[2], strict=True)]
    print(f"\n{args.games} games, Dellacherie on a 10x{args.height} board, no piece cap\n")
    print("| worker processes | seconds, median | each pair |")
    print("|---|---:|---|")
    for processes, seconds in times.items():
        shown = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"| {processes} | {statistics.median(seconds):.1f} | {shown} |")
    print(f"\nspeed-up, 1 process / 2, median of pairs: {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
