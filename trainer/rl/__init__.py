"""Framework-free learning core: config, dqn and cem learners, training loop, evaluation.

Imports no Django, Channels or Celery; the web side calls `train()` with callbacks.
"""

import importlib
from typing import Any

from trainer.rl.config import PRESETS, ConfigError, TrainConfig
from trainer.rl.events import BestGame, Callback, CheckpointInfo, EpisodeMetrics, Frame

# Web processes read configs and events but must never load torch, so the names that need
# torch or the engine are imported on first use (PEP 562).
_LAZY = {
    "EvalResult": "trainer.rl.evaluation",
    "TrainResult": "trainer.rl.run",
    "TrainingDiverged": "trainer.rl.run",
    "evaluate": "trainer.rl.evaluation",
    "load_policy": "trainer.rl.policies",
    "train": "trainer.rl.training",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "BestGame",
    "Callback",
    "CheckpointInfo",
    "ConfigError",
    "EpisodeMetrics",
    "EvalResult",
    "Frame",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "evaluate",
    "load_policy",
    "train",
]
