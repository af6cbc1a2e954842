"""train(): real short runs of both learners, callbacks, stop, resume and divergence."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.rl import (
    ConfigError,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    evaluate,
    train,
)
from trainer.rl.checkpoint import load_checkpoint
from trainer.rl.evaluation import evaluation_seeds
from trainer.tetris import PIECE_NAMES, TetrisGame

from .conftest import SHORT_DQN, Recorder


def random_play_mean_lines(games: int, piece_cap: int, height: int = 20) -> float:
    """Mean lines of uniformly random legal placements on the evaluation seeds."""
    rng = np.random.default_rng(0)
    lines = []
    for seed in evaluation_seeds(games):
        game = TetrisGame(height=height, seed=seed)
        while not game.game_over and game.pieces < piece_cap:
            game.step(rng.choice(game.legal_actions()))
        lines.append(game.lines)
    return float(np.mean(lines))


def test_dqn_learns_to_beat_random_play(trained_dqn: TrainResult) -> None:
    result = evaluate(trained_dqn.checkpoint, games=5, piece_cap=500)
    assert result.mean_lines > 50
    assert result.mean_lines > 20 * random_play_mean_lines(5, 500)


def test_cem_improves_its_population_and_beats_random_play(tmp_path: Path) -> None:
    config = TrainConfig.from_preset(
        "record",
        {
            "max_minutes": 0.0,
            "max_episodes": 120,
            "cem_population": 20,
            "cem_elite_fraction": 0.2,
            "height": 10,
            "frames_per_second": 0.0,
        },
    )
    recorder = Recorder()
    result = train(config, callbacks=[recorder], checkpoint_dir=tmp_path)
    generations = {m.extra["cem/generation"]: m.extra for m in recorder.episodes}
    assert len(generations) == 6 and result.episodes == 120
    first, last = generations[1], generations[6]
    assert last["cem/population_mean_lines"] > 4 * first["cem/population_mean_lines"]
    assert all(g["cem/capped_games"] < 20 for g in generations.values())
    assert evaluate(tmp_path, games=5, height=10, piece_cap=2_000).mean_lines > 30


def test_callbacks_get_metrics_and_frames_at_the_configured_rate() -> None:
    recorder = Recorder()
    config = TrainConfig.from_preset("quick", {"max_minutes": 0.03, "frames_per_second": 10.0})
    result = train(config, callbacks=[recorder])
    assert 5 <= len(recorder.frames) <= 0.03 * 60 * 10 + 2
    frame = recorder.frames[-1]
    assert len(frame.board) == 200 and set(frame.board) <= set("." + PIECE_NAMES)
    assert frame.next in PIECE_NAMES
    assert [m.episode for m in recorder.episodes] == list(range(1, result.episodes + 1))
    last = recorder.episodes[-1]
    assert last.total_pieces <= result.total_pieces and last.placements_per_second > 0
    assert last.epsilon is not None and "charts/updates" in last.as_dict()


def test_no_frames_when_frame_rate_is_zero() -> None:
    recorder = Recorder()
    train(TrainConfig.from_preset("quick", {**SHORT_DQN, "max_pieces": 500}), callbacks=[recorder])
    assert recorder.frames == [] and recorder.episodes


@pytest.mark.parametrize("algorithm", ["dqn", "cem"])
def test_stop_request_writes_checkpoint_and_returns_promptly(
    algorithm: str, tmp_path: Path
) -> None:
    stop_at = time.monotonic() + 1.5
    recorder = Recorder()
    config = TrainConfig.from_preset("quick", {"algorithm": algorithm, "frames_per_second": 0.0})
    result = train(
        config,
        callbacks=[recorder],
        should_stop=lambda: time.monotonic() >= stop_at,
        checkpoint_dir=tmp_path,
    )
    assert time.monotonic() - stop_at < 1.0
    assert result.stopped and result.checkpoint == tmp_path / "checkpoint.pt"
    assert recorder.checkpoints[-1].path == result.checkpoint
    assert load_checkpoint(result.checkpoint)["progress"]["total_pieces"] == result.total_pieces


def test_resume_continues_the_same_run(tmp_path: Path) -> None:
    config = TrainConfig.from_preset("quick", {**SHORT_DQN, "max_pieces": 2_000})
    first = train(config, checkpoint_dir=tmp_path / "a")
    saved = load_checkpoint(first.checkpoint)

    # Resuming with the budget already spent changes nothing: the state round-trips.
    again = train(config, checkpoint_dir=tmp_path / "b", resume_from=first.checkpoint)
    reloaded = load_checkpoint(again.checkpoint)
    for name, tensor in saved["state"]["value"].items():
        assert torch.equal(reloaded["state"]["value"][name], tensor)
    steps = [c["state"]["optimizer"]["state"][0]["step"] for c in (saved, reloaded)]
    assert steps[0] == steps[1] > 0
    assert reloaded["config"] == saved["config"]
    wall_time = saved["progress"].pop("wall_time")
    assert reloaded["progress"].pop("wall_time") >= wall_time
    assert reloaded["progress"] == saved["progress"]

    recorder = Recorder()
    longer = TrainConfig.from_preset("quick", {**SHORT_DQN, "max_pieces": 4_000})
    resumed = train(longer, callbacks=[recorder], resume_from=first.checkpoint)
    assert recorder.episodes[0].episode == first.episodes + 1
    assert resumed.total_pieces >= 4_000 and resumed.wall_time > first.wall_time


def test_resume_with_another_algorithm_is_a_config_error(trained_dqn: TrainResult) -> None:
    with pytest.raises(ConfigError) as raised:
        train(TrainConfig(algorithm="cem"), resume_from=trained_dqn.checkpoint)
    assert "algorithm" in raised.value.errors


def test_nan_loss_ends_training_and_keeps_last_checkpoint(tmp_path: Path) -> None:
    config = TrainConfig.from_preset("quick", {**SHORT_DQN, "max_pieces": 2_000})
    first = train(config, checkpoint_dir=tmp_path)
    good = first.checkpoint.read_bytes()
    updates = load_checkpoint(first.checkpoint)["state"]["updates"]
    poisoned = TrainConfig.from_preset(
        "quick", {**SHORT_DQN, "max_pieces": 20_000, "inject_nan_at_update": updates + 10}
    )
    with pytest.raises(TrainingDiverged, match=r"loss became nan at gradient update"):
        train(poisoned, checkpoint_dir=tmp_path, resume_from=first.checkpoint)
    assert first.checkpoint.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_dqn_run_is_the_same_on_one_thread_or_two(tmp_path: Path) -> None:
    values = []
    for threads in (1, 2):
        config = TrainConfig.from_preset(
            "quick", {**SHORT_DQN, "max_pieces": 2_500, "threads": threads}
        )
        result = train(config, checkpoint_dir=tmp_path / str(threads))
        values.append(load_checkpoint(result.checkpoint)["state"]["value"])
    assert all(torch.equal(values[0][name], values[1][name]) for name in values[0])
