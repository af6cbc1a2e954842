"""What the overlay costs training: placements per second with it off and on, and before it.

    .venv/bin/python bench/overlay.py [--seconds 20] [--rounds 3] [--before REV]
        [--algorithms dqn,cem]

Each measurement is a fresh process that trains one run (dqn: preset `quick`; cem:
preset `record`) for --seconds after a warm-up (5 s from its first finished game: the
dqn learner is updating by then), with the real RunPublisher sending frames
at the preset's rate (15 a second) through the live bridge into a sink that drops them, so
every frame is still built and JSON-encoded as for Redis. Setups, interleaved round by
round so the shared machine's drift falls on all of them alike:
- before: the code at REV (default: the commit before the overlay), checked out into a
  temporary git worktree;
- off: this tree, nobody has the overlay on (the publisher's question answers False);
- on: this tree, a viewer has it on: every frame carries the options of every placement.
Reported: each setup's median placements per second, and the ratios of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "7b3bc80"

# Runs in the measured tree: train, then print placements per second after the warm-up.
MEASURE = r"""
import json, sys, time
from live import bridge
from live.publisher import RunPublisher
from trainer.rl import Callback, TrainConfig, train

algorithm, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
bridge.configure(sink=lambda group, envelope: None)
if mode == "on":
    bridge.options_wanted = lambda group: True

class Clock(Callback):
    def __init__(self):
        self.marks = []
    def on_episode(self, m):
        self.marks.append((time.monotonic(), m.total_pieces))

preset = "quick" if algorithm == "dqn" else "record"
warm_up = 5.0
minutes = (seconds + 2 * warm_up) / 60
config = TrainConfig.from_preset(preset, {"max_minutes": minutes, "seed": 1})
clock = Clock()
train(config, callbacks=[clock, RunPublisher(1, frames_per_second=config.frames_per_second)])
# Timed from the first finished game: compiling and filling the buffer are not measured.
started = clock.marks[0][0]
after = [(t, p) for t, p in clock.marks if t - started >= warm_up]
(t0, p0), (t1, p1) = after[0], after[-1]
print(json.dumps({"pps": (p1 - p0) / (t1 - t0)}))
"""


# Compiles the engine's kernels in a tree (a new worktree has no numba cache yet).
COMPILE = r"""
from trainer.rl import TrainConfig, train
train(TrainConfig.from_preset("quick", {"max_pieces": 3000, "learning_starts": 500}))
train(TrainConfig.from_preset("record", {"max_episodes": 100, "cem_train_height": 8}))
"""


def measure(tree: Path, algorithm: str, mode: str, seconds: float) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "DJANGO_SETTINGS_MODULE": ""}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, algorithm, mode, str(seconds)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["pps"]


# The cost of the options themselves, per frame: what "on" adds at most, free of the noise of
# whole training runs (a frame's options are worked out once, 15 times a second).
PER_FRAME = r"""
import json, time
import numpy as np
from trainer.rl.network import ValueNetwork
from trainer.rl.options import linear_options, value_options
from trainer.tetris import BCTS_WEIGHTS, TetrisGame

game = TetrisGame(10, 20, "uniform", 7)
game.play_linear(BCTS_WEIGHTS, "bcts", 40)
network = ValueNetwork(8, 64).eval()
result = {}
for name, work in [
    ("cem", lambda: linear_options(game, BCTS_WEIGHTS, "bcts")),
    ("dqn", lambda: value_options(game, network, "bcts", 0.99)),
]:
    work()
    times = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(200):
            work()
        times.append((time.perf_counter() - started) / 200)
    result[name] = sorted(times)[3]
print(json.dumps(result))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--algorithms", default="dqn,cem")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        before = Path(temp) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
            check=True,
            capture_output=True,
        )
        try:
            trees = {"before": (before, "off"), "off": (ROOT, "off"), "on": (ROOT, "on")}
            for tree in (before, ROOT):
                env = {**os.environ, "PYTHONPATH": str(tree), "DJANGO_SETTINGS_MODULE": ""}
                subprocess.run([sys.executable, "-c", COMPILE], cwd=tree, env=env, check=True)
            env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": ""}
            out = subprocess.run(
                [sys.executable, "-c", PER_FRAME],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for name, seconds in json.loads(out.strip().splitlines()[-1]).items():
                share = seconds * 15 * 100
                print(
                    f"{name}: options of one frame {seconds * 1e6:,.0f} us, "
                    f"{share:.2f}% of a second at 15 frames a second"
                )
            for algorithm in args.algorithms.split(","):
                results: dict[str, list[float]] = {name: [] for name in trees}
                for round_number in range(args.rounds):
                    for name, (tree, mode) in trees.items():
                        pps = measure(tree, algorithm, mode, args.seconds)
                        results[name].append(pps)
                        print(f"{algorithm} round {round_number + 1} {name}: {pps:,.0f}/s")
                medians = {name: statistics.median(v) for name, v in results.items()}
                print(f"\n{algorithm}: median placements per second over {args.rounds} rounds")
                for name, value in medians.items():
                    spread = f"{min(results[name]):,.0f}-{max(results[name]):,.0f}"
                    print(f"  {name:7s} {value:10,.0f}   (range {spread})")
                print(f"  off / before {medians['off'] / medians['before']:.3f}")
                print(f"  on / off     {medians['on'] / medians['off']:.3f}\n")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                check=False,
            )


if __name__ == "__main__":
    main()
