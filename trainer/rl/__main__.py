"""Command line: `python -m trainer.rl train ...` and `python -m trainer.rl evaluate ...`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from tqdm import tqdm

from trainer.rl.confidence import score_text
from trainer.rl.config import PRESETS, ConfigError, TrainConfig
from trainer.rl.evaluation import EvalResult, evaluate
from trainer.rl.events import Callback, CheckpointInfo, EpisodeMetrics
from trainer.rl.run import TrainingDiverged
from trainer.rl.training import train


class ProgressBar(Callback):
    """A tqdm bar over the wall-clock budget (or episodes), with the latest metrics beside it."""

    def __init__(self, config: TrainConfig) -> None:
        self.by_time = bool(config.max_minutes)
        total = config.max_minutes * 60 if self.by_time else config.max_episodes or None
        self.bar = tqdm(total=total, unit="s" if self.by_time else "game", dynamic_ncols=True)
        self.checkpoints = 0

    def on_episode(self, m: EpisodeMetrics) -> None:
        self.bar.update((round(m.wall_time) if self.by_time else m.episode) - self.bar.n)
        self.bar.set_postfix(
            episode=m.episode,
            lines=m.lines,
            pieces_per_s=f"{m.placements_per_second:.0f}",
            checkpoints=self.checkpoints,
            refresh=False,
        )

    def on_checkpoint(self, c: CheckpointInfo) -> None:
        self.checkpoints += 1


def train_command(args: argparse.Namespace) -> int:
    """Train from a preset with overrides, checkpointing into --out; Ctrl-C stops cleanly."""
    overrides = TrainConfig.parse_overrides(args.set)
    if args.algorithm:
        overrides["algorithm"] = args.algorithm
    if args.minutes is not None:
        overrides["max_minutes"] = args.minutes
    config = TrainConfig.from_preset(args.preset, overrides)
    out = Path(args.out)
    resume_from = out if args.resume else None
    stop = []
    signal.signal(signal.SIGINT, lambda signum, frame: stop.append(signum))
    bar = ProgressBar(config)
    try:
        result = train(
            config,
            callbacks=[bar],
            should_stop=lambda: bool(stop),
            checkpoint_dir=out,
            resume_from=resume_from,
        )
    finally:
        bar.bar.close()
    state = "stopped" if result.stopped else "finished"
    print(
        f"{state} after {result.wall_time:.0f} s: {result.episodes} games, "
        f"{result.total_pieces} pieces, best {result.best_lines} lines, "
        f"last {min(result.episodes, 100)} games {result.recent_mean_lines:.1f} lines on average; "
        f"checkpoint {result.checkpoint}"
    )
    if result.best_checkpoint:
        print(
            f"best-evaluated policy: {result.best_checkpoint} (95% lower bound "
            f"{result.best_evaluation:,.0f} lines per game on the selection seeds)"
        )
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint or reference controller and print a table (or JSON)."""
    with tqdm(total=args.games, unit="game", disable=args.json, dynamic_ncols=True) as bar:
        result = evaluate(
            args.policy,
            games=args.games,
            piece_cap=args.piece_cap,
            time_budget_s=args.time_budget,
            progress=lambda done, total: bar.update(done - bar.n),
            threads=args.threads,
        )
    print(json.dumps(result.as_dict()) if args.json else format_table(result))
    return 0


def format_table(result: EvalResult) -> str:
    """A plain-text summary of an evaluation."""
    cap = f"{result.piece_cap:,} pieces" if result.piece_cap else "none"
    budget = f"{result.time_budget_s:g} s" if result.time_budget_s else "none"
    rows = [
        ("policy", result.policy),
        ("games", f"{result.games}"),
        ("piece cap", cap),
        ("time budget", budget),
        ("mean lines", score_text(result.as_dict())),
        ("median lines", f"{result.median_lines:,.1f}"),
        ("min lines", f"{result.min_lines:,}"),
        ("max lines", f"{result.max_lines:,}"),
        ("ended", f"{result.ended} of {result.games} games before the cap"),
        ("cut short", f"{result.truncated} (by the cap or the time budget)"),
        ("seconds", f"{result.seconds:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of both commands."""
    parser = argparse.ArgumentParser(prog="python -m trainer.rl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train an agent")
    train_parser.add_argument("--preset", default="quick", choices=list(PRESETS))
    train_parser.add_argument("--algorithm", choices=["dqn", "cem"])
    train_parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    train_parser.add_argument("--minutes", type=float, help="wall-clock budget (0 = none)")
    train_parser.add_argument("--out", required=True, help="folder for the checkpoint")
    train_parser.add_argument(
        "--resume", action="store_true", help="continue the run checkpointed in --out"
    )
    train_parser.set_defaults(handler=train_command)

    evaluate_parser = commands.add_parser("evaluate", help="evaluate a policy")
    evaluate_parser.add_argument(
        "policy", help="checkpoint file, run folder (its best policy) or dellacherie / bcts"
    )
    evaluate_parser.add_argument("--games", type=int, default=20)
    evaluate_parser.add_argument("--piece-cap", type=int, default=0, help="0 = none")
    evaluate_parser.add_argument("--time-budget", type=float, help="seconds (default: none)")
    evaluate_parser.add_argument("--threads", type=int, default=2)
    evaluate_parser.add_argument("--json", action="store_true", help="print JSON")
    evaluate_parser.set_defaults(handler=evaluate_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; configuration errors and divergence end with a message, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"invalid configuration: {error}", file=sys.stderr)
        return 2
    except (TrainingDiverged, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
