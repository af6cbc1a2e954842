"""Learning curves: lines per game against wall-clock training time.

Trains a preset for a wall-clock budget, snapshots its policy at fixed times, then plays
greedy evaluation games with every snapshot on the fixed evaluation seeds. In the same run
(dqn presets) it trains a faithful re-implementation of the popular PyTorch afterstate DQN
(vietnh1009/Tetris-deep-Q-learning-pytorch: 4-64-64-1 MLP over lines, holes, bumpiness and
aggregate height, replay 30,000, batch 512, one update per game) for the same budget, and
evaluates it the same way. Writes a PNG, a Markdown table and the raw JSON.

    .venv/bin/python bench/learning.py --preset quick --minutes 10 --out bench/out/learning
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.rl import Callback, CheckpointInfo, TrainConfig, evaluate, train
from trainer.rl.evaluation import EvalResult
from trainer.rl.events import EpisodeMetrics
from trainer.rl.policies import one_torch_thread
from trainer.tetris import TetrisGame


class Snapshots(Callback):
    """Copies the run's checkpoint the first time training passes each snapshot time."""

    def __init__(self, times_s: list[float], folder: Path) -> None:
        self.pending = sorted(times_s)
        self.folder = folder
        self.taken: list[tuple[float, Path]] = []

    def on_checkpoint(self, c: CheckpointInfo) -> None:
        while self.pending and c.wall_time >= self.pending[0]:
            self.pending.pop(0)
            path = self.folder / f"t{c.wall_time:07.1f}s.pt"
            shutil.copyfile(c.path, path)
            self.taken.append((c.wall_time, path))


class MetricLog(Callback):
    """Appends the learner's metrics to a file as they change (cem: once per generation)."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a")
        self.last: dict[str, float] = {}

    def on_episode(self, m: EpisodeMetrics) -> None:
        if m.extra and m.extra != self.last:
            self.last = m.extra
            self.file.write(json.dumps(m.as_dict()) + "\n")
            self.file.flush()


# --- the popular afterstate DQN, as vietnh1009's train.py does it -------------------------


class PopularDQN(nn.Module):
    """4-64-64-1 ReLU MLP, Xavier-uniform weights, zero biases."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
        )
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.constant_(module.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass
class PopularPolicy:
    """Greedy on V(next state) alone, as the original plays (lines are one of its inputs)."""

    name: str
    network: PopularDQN

    @torch.no_grad()
    def choose(self, games: list[TetrisGame]) -> list[int]:
        """argmax of V over each game's afterstates, all games in one forward pass."""
        after = [game.afterstates("classic") for game in games]
        values = self.network(torch.from_numpy(np.concatenate([a.features for a in after])))
        actions, start = [], 0
        for a in after:
            end = start + len(a.actions)
            actions.append(int(a.actions[int(torch.argmax(values[start:end, 0]))]))
            start = end
        return actions


def train_popular_dqn(
    seconds: float, snapshot_times_s: list[float], seed: int
) -> tuple[list[tuple[float, PopularPolicy]], float | None]:
    """Train the popular DQN for `seconds`; return (wall time, policy) snapshots.

    The original stops after 3,000 training games (its num_epochs); here it keeps going with
    the same settings for the whole budget, and the time of its 3,000th game is returned.
    """
    width, batch_size, lr, gamma = 10, 512, 1e-3, 0.99
    initial_epsilon, final_epsilon, num_decay_epochs, num_epochs = 1.0, 1e-3, 2000, 3000
    num_epochs_at = None
    replay_memory_size = 30_000
    torch.manual_seed(seed)
    random.seed(seed)
    model = PopularDQN()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.MSELoss()
    game = TetrisGame(seed=seed)
    state = torch.zeros(4)
    replay_memory: collections.deque = collections.deque(maxlen=replay_memory_size)
    epoch, snapshots, pending = 0, [], sorted(snapshot_times_s)
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        while pending and elapsed >= pending[0]:
            pending.pop(0)
            frozen = copy.deepcopy(model).eval()
            snapshots.append((elapsed, PopularPolicy(f"popular dqn {elapsed:.0f}s", frozen)))
        if elapsed >= seconds:
            break
        after = game.afterstates("classic")
        next_states = torch.from_numpy(after.features)
        epsilon = final_epsilon + (
            max(num_decay_epochs - epoch, 0) * (initial_epsilon - final_epsilon) / num_decay_epochs
        )
        model.eval()
        with torch.no_grad():
            predictions = model(next_states)[:, 0]
        model.train()
        if random.random() <= epsilon:
            index = random.randint(0, len(after.actions) - 1)
        else:
            index = int(torch.argmax(predictions))
        next_state = next_states[index, :]
        lines = game.step(int(after.actions[index]))
        reward = 1 + lines**2 * width
        done = game.game_over
        replay_memory.append([state, reward, next_state, done])
        if done:
            game.reset(seed=random.randrange(2**31))
            state = torch.zeros(4)
        else:
            state = next_state
            continue
        if len(replay_memory) < replay_memory_size / 10:
            continue
        epoch += 1
        if epoch == num_epochs:
            num_epochs_at = elapsed
        batch = random.sample(replay_memory, min(len(replay_memory), batch_size))
        state_batch, reward_batch, next_state_batch, done_batch = zip(*batch, strict=True)
        state_batch = torch.stack(state_batch)
        reward_batch = torch.tensor(reward_batch, dtype=torch.float32)[:, None]
        next_state_batch = torch.stack(next_state_batch)
        q_values = model(state_batch)
        model.eval()
        with torch.no_grad():
            next_prediction_batch = model(next_state_batch)
        model.train()
        y_batch = torch.cat(
            [
                reward if done else reward + gamma * prediction
                for reward, done, prediction in zip(
                    reward_batch, done_batch, next_prediction_batch, strict=True
                )
            ]
        )[:, None]
        optimizer.zero_grad()
        loss = criterion(q_values, y_batch)
        loss.backward()
        optimizer.step()
    return snapshots, num_epochs_at


# --- the benchmark ------------------------------------------------------------------------


def evaluate_snapshot(policy: object, args: argparse.Namespace) -> EvalResult:
    """The same greedy evaluation for every snapshot and reference controller."""
    return evaluate(
        policy,
        games=args.games,
        piece_cap=args.eval_piece_cap,
        time_budget_s=args.eval_seconds,
    )


def row(label: str, minutes: float | None, result: EvalResult) -> dict:
    """One line of the results table."""
    return {
        "curve": label,
        "minutes": minutes,
        "mean_lines": result.mean_lines,
        "median_lines": result.median_lines,
        "min_lines": result.min_lines,
        "max_lines": result.max_lines,
        "cut_short": result.truncated,
        "games": result.games,
        "piece_cap": result.piece_cap,
        "eval_seconds": round(result.seconds, 1),
    }


def markdown_table(rows: list[dict]) -> str:
    """Rows as a Markdown table."""
    header = "| curve | training min | mean | median | min | max | cut short | eval s |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        minutes = "-" if r["minutes"] is None else f"{r['minutes']:.2f}"
        lines.append(
            f"| {r['curve']} | {minutes} | {r['mean_lines']:,.0f} | {r['median_lines']:,.0f} "
            f"| {r['min_lines']:,} | {r['max_lines']:,} | {r['cut_short']}/{r['games']} "
            f"| {r['eval_seconds']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Mean lines per game (and the min-max range) against training minutes, log scale."""
    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    for curve in dict.fromkeys(r["curve"] for r in rows if r["minutes"] is not None):
        points = [r for r in rows if r["curve"] == curve]
        minutes = [r["minutes"] for r in points]
        axes.plot(minutes, [max(r["mean_lines"], 0.5) for r in points], marker="o", label=curve)
        axes.fill_between(
            minutes,
            [max(r["min_lines"], 0.5) for r in points],
            [max(r["max_lines"], 0.5) for r in points],
            alpha=0.15,
        )
    for r in rows:
        if r["minutes"] is None:
            axes.axhline(r["mean_lines"], linestyle="--", color="grey")
            axes.annotate(
                r["curve"],
                (0.01, r["mean_lines"]),
                xycoords=("axes fraction", "data"),
                fontsize=8,
                va="bottom",
            )
    if rows and rows[0]["piece_cap"]:
        # 10 columns, 4 cells a piece: a game cut at the cap has cleared at most 0.4 a piece.
        axes.axhline(0.4 * rows[0]["piece_cap"], linestyle=":", color="black")
        axes.annotate(
            "piece cap",
            (0.01, 0.4 * rows[0]["piece_cap"]),
            xycoords=("axes fraction", "data"),
            fontsize=8,
            va="bottom",
        )
    axes.set_yscale("log")
    axes.set_xlabel("training wall time (minutes)")
    axes.set_ylabel("lines per game (mean; band: min to max)")
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    """Train, snapshot, evaluate, and write the plot, table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget")
    parser.add_argument(
        "--at",
        default="0.5,1,1.5,2,3,4,5,6,8,10",
        help="snapshot times in training minutes (those within the budget are used)",
    )
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--eval-piece-cap", type=int, default=50_000, help="0 = none")
    parser.add_argument("--eval-seconds", type=float, default=60.0, help="per snapshot")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--references", nargs="*", default=[], help="dellacherie, bcts")
    parser.add_argument("--out", default="bench/out/learning")
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="skip training: evaluate the snapshots an earlier run left in --out",
    )
    args = parser.parse_args()

    out = Path(args.out)
    (out / "snapshots").mkdir(parents=True, exist_ok=True)
    times_s = [float(t) * 60 for t in args.at.split(",") if float(t) <= args.minutes]
    overrides = {
        **TrainConfig.parse_overrides(args.set),
        "max_minutes": args.minutes,
        "checkpoint_every_s": 5.0,
        "frames_per_second": 0.0,
    }
    config = TrainConfig.from_preset(args.preset, overrides)
    baseline = args.baseline if args.baseline is not None else config.algorithm == "dqn"
    label = f"{args.preset} ({config.algorithm})"

    snapshots = Snapshots(times_s, out / "snapshots")
    started = time.monotonic()
    popular, popular_end = [], None
    if args.evaluate_only:  # names are t<training seconds>s.pt
        found = sorted((float(p.stem[1:-1]), p) for p in (out / "snapshots").glob("t*s.pt"))
        # the snapshot taken at each --at time (the first checkpoint at or after it)
        snapshots.taken = [(t, p) for t, p in found if any(0 <= t - at < 60 for at in times_s)]
        baseline = False
    else:
        result = train(
            config,
            callbacks=[snapshots, MetricLog(out / "metrics.jsonl")],
            checkpoint_dir=out / "run",
        )
        trained = f"trained {result.wall_time:.0f} s, {result.total_pieces} pieces"
        print(f"{label}: {trained}", flush=True)
    if baseline:
        with one_torch_thread():  # the original trains on one core
            popular, popular_end = train_popular_dqn(args.minutes * 60, times_s, config.seed)
        print(f"popular DQN: its 3,000th training game ended at {popular_end} s", flush=True)
    training_seconds = None if args.evaluate_only else time.monotonic() - started

    rows = []
    for wall_time, path in snapshots.taken:
        rows.append(row(label, wall_time / 60, evaluate_snapshot(path, args)))
        print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    for wall_time, policy in popular:
        rows.append(
            row("popular DQN (vietnh1009)", wall_time / 60, evaluate_snapshot(policy, args))
        )
        print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    for name in args.references:
        rows.append(row(name, None, evaluate_snapshot(name, args)))
        print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    cap = f"{args.eval_piece_cap:,} pieces" if args.eval_piece_cap else "none"
    title = (
        f"{label}, {args.minutes:g} min; eval {args.games} games, piece cap {cap}, "
        f"{args.eval_seconds:g} s budget per snapshot"
    )
    plot(rows, out / "learning.png", title)
    table = markdown_table(rows)
    (out / "learning.md").write_text(f"{title}\n\n{table}\n")
    (out / "learning.json").write_text(
        json.dumps(
            {
                "config": config.to_dict(),
                "args": vars(args),
                "machine": machine,
                "training_seconds": training_seconds,
                "popular_dqn_3000th_game_s": popular_end,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"\n{title}\n\n{table}\n\nwrote {out}/learning.png, learning.md, learning.json")


if __name__ == "__main__":
    main()
