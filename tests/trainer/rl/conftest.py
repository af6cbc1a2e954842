"""Shared by the learning-core tests: a small trained dqn checkpoint and an event recorder."""

from pathlib import Path

import pytest

from trainer.rl import (
    Callback,
    CheckpointInfo,
    EpisodeMetrics,
    Frame,
    TrainConfig,
    TrainResult,
    train,
)

# Enough to leave random play far behind (a few seconds on two cores).
SHORT_DQN = {"max_pieces": 5_000, "learning_starts": 1_000, "frames_per_second": 0.0}


@pytest.fixture(scope="session")
def trained_dqn(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A quick-preset dqn run of 5,000 placements, checkpointed."""
    out = tmp_path_factory.mktemp("dqn")
    return train(TrainConfig.from_preset("quick", SHORT_DQN), checkpoint_dir=Path(out))


class Recorder(Callback):
    """Keeps every event."""

    def __init__(self) -> None:
        self.episodes: list[EpisodeMetrics] = []
        self.frames: list[Frame] = []
        self.checkpoints: list[CheckpointInfo] = []

    def on_episode(self, m: EpisodeMetrics) -> None:
        self.episodes.append(m)

    def on_frame(self, f: Frame) -> None:
        self.frames.append(f)

    def on_checkpoint(self, c: CheckpointInfo) -> None:
        self.checkpoints.append(c)
