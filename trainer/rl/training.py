"""train(): the one entry point of a training run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from trainer.rl.batches import BatchPlayer
from trainer.rl.cem import train_cem
from trainer.rl.checkpoint import load_checkpoint
from trainer.rl.config import STATE_SHAPING, ConfigError, TrainConfig
from trainer.rl.dqn import train_dqn
from trainer.rl.events import Callback
from trainer.rl.policies import one_torch_thread
from trainer.rl.run import RunContext, TrainResult


def train(
    config: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] = lambda: False,
    checkpoint_dir: Path | None = None,
    resume_from: Path | None = None,
    batch_player: BatchPlayer | None = None,
) -> TrainResult:
    """Train until a budget is spent or `should_stop()` is true; checkpoint at the end.

    `batch_player` plays cem's generations when `cem_chunk_games` asks for them to be
    spread over other processes; without one, such a config is refused.
    """
    if config.algorithm == "cem" and config.cem_chunk_games and batch_player is None:
        raise ConfigError(
            {
                "cem_chunk_games": "spreads a generation over the `evaluate` workers, which only "
                "a run on the web or through manage.py has: set 0 to play here"
            }
        )
    resumed = load_checkpoint(resume_from) if resume_from else None
    if resumed:
        saved = resumed["config"]
        errors = {
            name: f"must stay {saved[name]!r} to resume, got {getattr(config, name)!r}"
            for name in STATE_SHAPING
            if saved[name] != getattr(config, name)
        }
        if errors:
            raise ConfigError(errors)
    run = RunContext(
        config,
        callbacks,
        should_stop,
        Path(checkpoint_dir) if checkpoint_dir else None,
        resumed["progress"] if resumed else None,
        batch_player,
    )
    learner = {"dqn": train_dqn, "cem": train_cem}[config.algorithm]
    with one_torch_thread():
        learner(config, run, resumed["state"] if resumed else None)
    return run.result()
