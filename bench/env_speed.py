"""Engine speed: our Tetris engine and env beside Tetris-Gymnasium, in one run.

Measures placements per second through ``env.step``, afterstates with the eight BCTS
features per second (compiled loop and Python API), greedy linear-game placements per
second, and Tetris-Gymnasium's default env and its grouped-actions wrapper. Tetris-
Gymnasium runs in its own venv, bench/.venv-tetris-gymnasium, which this script creates
(pip install tetris-gymnasium==0.3.1) the first time; it never enters requirements.txt.

    .venv/bin/python bench/env_speed.py [--seconds 2] [--repeats 5] [--json out.json]

Each figure is the median of --repeats timed runs of about --seconds each (min and max
beside it). Single-threaded figures are per second of CPU time (time.process_time), so that
other users of a shared machine slow them less; play_linear_games, which runs on all cores,
is per second of wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TG_VENV = ROOT / "bench" / ".venv-tetris-gymnasium"
TG_REQUIREMENT = "tetris-gymnasium==0.3.1"
BATCH = 1_000
OUR_STEP = "ours: env.step, random legal placement (gym.make)"
TG_HARD_DROP = "Tetris-Gymnasium: default env, hard drop each step (placements)"
TG_GROUPED = "Tetris-Gymnasium: grouped-actions wrapper, random legal placement"


Run = tuple[Callable[[], int], Callable[[], float]]
"""A workload returning how many items it processed, and the clock that times it."""


def rates(runs: dict[str, Run], seconds: float, repeats: int) -> dict[str, list[float]]:
    """Items per second of each run, timed in repeats rounds of about seconds each.

    Rounds go over every run in turn, so that load from other users of the machine falls
    on all of them alike.
    """
    for run, _ in runs.values():
        run()  # warm up: compile, caches, first allocations
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (run, clock) in runs.items():
            count = 0
            start = clock()
            while (elapsed := clock() - start) < seconds:
                count += run()
            results[name].append(count / elapsed)
    return results


class RandomLegalPlay:
    """Steps an env with random legal placements from info["action_mask"], resetting at the end."""

    def __init__(self, env: object, batch: int = BATCH) -> None:
        self.env = env
        self.batch = batch
        self.rng = np.random.default_rng(0)
        _, self.info = env.reset(seed=0)

    def __call__(self) -> int:
        """Play one batch of placements; return how many."""
        env, info = self.env, self.info
        for u in self.rng.random(self.batch):
            legal = np.flatnonzero(info["action_mask"])
            _, _, terminated, truncated, info = env.step(int(legal[int(u * len(legal))]))
            if terminated or truncated:
                _, info = env.reset()
        self.info = info
        return self.batch


def measure_ours(seconds: float, repeats: int) -> dict[str, list[float]]:
    """Rates of our env, afterstate generator and greedy play."""
    sys.path.insert(0, str(ROOT))
    import copy

    import gymnasium as gym
    import numba
    from numba import njit

    from trainer.tetris import BCTS_WEIGHTS, ENV_ID, TetrisGame, kernels, play_linear_games
    from trainer.tetris.features import BCTS, MAX_FEATURES

    threads = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(1)
    runs: dict[str, Run] = {OUR_STEP: (RandomLegalPlay(gym.make(ENV_ID)), time.process_time)}

    def positions(policy: str, count: int) -> list[TetrisGame]:
        """Copies of a game at each of its first count pieces, played by policy."""
        game = TetrisGame(seed=1)
        rng = np.random.default_rng(1)
        found = []
        while len(found) < count:
            if game.game_over:
                game.reset(seed=len(found))
            found.append(copy.deepcopy(game))
            if policy == "bcts":
                game.play_linear(BCTS_WEIGHTS, "bcts", 1)
            else:
                game.step(int(rng.choice(game.legal_actions())))
        return found

    @njit(nogil=True)
    def scan_all(
        rows: np.ndarray, heights: np.ndarray, walls: np.ndarray, pieces: np.ndarray
    ) -> int:
        n_max = 4 * heights.shape[1]
        actions = np.empty(n_max, np.int64)
        features = np.empty((n_max, MAX_FEATURES), np.float32)
        lines = np.empty(n_max, np.int64)
        weights = np.zeros(MAX_FEATURES)
        total = 0
        for i in range(rows.shape[0]):
            n, _ = kernels.scan_placements(
                rows[i],
                heights[i],
                walls[i],
                pieces[i],
                BCTS,
                weights,
                True,
                actions,
                features,
                lines,
            )
            total += n
        return total

    # Boards a good policy sees (a BCTS game) and the tall, ragged ones of random play.
    for policy, label in (("bcts", "BCTS-game boards"), ("random", "random-play boards")):
        games = positions(policy, 5_000)
        # The kernel's own board arrays, rebuilt from each position's public colour grid.
        rows = np.empty((len(games), 20), np.int64)
        heights = np.empty((len(games), 10), np.int64)
        walls = np.empty(len(games), np.int64)
        pieces = np.array([g.current_piece for g in games])
        info = np.zeros(kernels.INFO_SIZE, np.int64)
        for i, g in enumerate(games):
            kernels.load_board(rows[i], heights[i], g.colours()[::-1], info, g.current_piece)
            walls[i] = info[kernels.WALL_HEIGHT]
        name = (
            f"ours: afterstates+8 BCTS features, compiled loop, 1 thread ({label}, "
            f"mean stack {walls.mean():.1f} rows)"
        )
        runs[name] = (
            lambda r=rows, h=heights, w=walls, p=pieces: scan_all(r, h, w, p),
            time.process_time,
        )

    games = positions("bcts", 200)
    runs["ours: afterstates+8 BCTS features, game.afterstates('bcts') (BCTS-game boards)"] = (
        lambda: sum(len(g.afterstates("bcts").actions) for g in games),
        time.process_time,
    )

    greedy = TetrisGame(seed=2)

    def greedy_chunk() -> int:
        if greedy.game_over:
            greedy.reset(seed=greedy.pieces)
        before = greedy.pieces
        greedy.play_linear(BCTS_WEIGHTS, "bcts", 20_000)
        return greedy.pieces - before

    runs["ours: greedy BCTS game, game.play_linear, 1 thread"] = (greedy_chunk, time.process_time)

    seeds = np.arange(2 * threads)

    def many_games() -> int:
        numba.set_num_threads(threads)
        pieces = play_linear_games(BCTS_WEIGHTS, seeds, piece_cap=50_000)[1]
        numba.set_num_threads(1)
        return int(pieces.sum())

    # Wall clock: this one is about using several cores at once.
    runs[f"ours: greedy BCTS games, play_linear_games, {threads} threads (wall clock)"] = (
        many_games,
        time.perf_counter,
    )
    return rates(runs, seconds, repeats)


def measure_tetris_gymnasium(seconds: float, repeats: int) -> dict[str, list[float]]:
    """Rates of Tetris-Gymnasium's default env and its grouped-actions wrapper (in its venv)."""
    import gymnasium as gym
    import tetris_gymnasium.envs  # noqa: F401  (registers tetris_gymnasium/Tetris)
    from tetris_gymnasium.wrappers.grouped import GroupedActionsObservations

    env = gym.make("tetris_gymnasium/Tetris")
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def steps(policy: str) -> int:
        actions = (
            np.full(BATCH, env.unwrapped.actions.hard_drop)
            if policy == "hard_drop"
            else rng.integers(env.action_space.n, size=BATCH)
        )
        for action in actions:
            _, _, terminated, truncated, _ = env.step(int(action))
            if terminated or truncated:
                env.reset()
        return BATCH

    # About 400 placements/s: small batches keep each timed run near --seconds.
    grouped = RandomLegalPlay(GroupedActionsObservations(gym.make("tetris_gymnasium/Tetris")), 20)
    return rates(
        {
            "Tetris-Gymnasium: default env, random key actions (steps, not placements)": (
                lambda: steps("random"),
                time.process_time,
            ),
            TG_HARD_DROP: (lambda: steps("hard_drop"), time.process_time),
            TG_GROUPED: (grouped, time.process_time),
        },
        seconds,
        repeats,
    )


def tetris_gymnasium_python() -> Path:
    """The Python of the Tetris-Gymnasium venv, created on first use."""
    python = TG_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {TG_VENV.relative_to(ROOT)} with {TG_REQUIREMENT} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(TG_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", TG_REQUIREMENT], check=True)
    return python


def machine() -> str:
    """CPU model, core count and software versions, for the record."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("numba", "numpy", "gymnasium"))
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {versions}, "
        f"{TG_REQUIREMENT}"
    )


def main() -> None:
    """Run every measurement and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure")
    parser.add_argument("--json", type=Path, help="also write the raw rates here")
    parser.add_argument("--tetris-gymnasium-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.tetris_gymnasium_worker:
        print(json.dumps(measure_tetris_gymnasium(args.seconds, args.repeats)))
        return

    results = measure_ours(args.seconds, args.repeats)
    worker = subprocess.run(
        [
            str(tetris_gymnasium_python()),
            __file__,
            "--tetris-gymnasium-worker",
            f"--seconds={args.seconds}",
            f"--repeats={args.repeats}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    results.update(json.loads(worker.stdout))

    print(f"machine: {machine()}")
    print(f"median of {args.repeats} runs of {args.seconds:g} s each\n")
    print("| measure | median /s | min /s | max /s |")
    print("|---|---:|---:|---:|")
    for name, values in results.items():
        low, mid, high = min(values), statistics.median(values), max(values)
        print(f"| {name} | {mid:,.0f} | {low:,.0f} | {high:,.0f} |")
    ours = statistics.median(results[OUR_STEP])
    print()
    for name in (TG_HARD_DROP, TG_GROUPED):
        theirs = statistics.median(results[name])
        print(
            f"placements/s, ours env.step / {name.removeprefix('Tetris-Gymnasium: ')}: "
            f"{ours / theirs:,.0f}x"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rates": results}, indent=2))


if __name__ == "__main__":
    main()
