"""Batches of greedy linear games: any slice, played anywhere, gives the games the whole
batch gives, so a cem run learns the same weights whoever plays its generations."""

import json

import numpy as np
import pytest

from trainer.rl import ConfigError, TrainConfig, train
from trainer.rl.batches import LinearBatch, PlayedBatch, play_here
from trainer.rl.run import TRAIN_SEED_LIMIT
from trainer.tetris import BCTS_WEIGHTS

from .conftest import Recorder


def a_batch(games: int = 12, piece_cap: int = 3_000) -> LinearBatch:
    rng = np.random.default_rng(7)
    weights = BCTS_WEIGHTS + rng.normal(0, 20, (games, len(BCTS_WEIGHTS)))
    seeds = tuple(int(s) for s in rng.integers(TRAIN_SEED_LIMIT, size=games))
    return LinearBatch(10, 10, "uniform", "bcts", piece_cap, seeds, weights)


def test_a_batch_survives_json_to_the_last_bit() -> None:
    batch = a_batch()
    again = LinearBatch.from_dict(json.loads(json.dumps(batch.to_dict())))
    assert again.seeds == batch.seeds and again.piece_cap == batch.piece_cap
    assert np.array_equal(again.weights, batch.weights)


def test_its_parts_played_apart_give_the_whole_batch() -> None:
    batch = a_batch()
    whole = play_here(batch, threads=2, keep_going=lambda: True)
    assert isinstance(whole, PlayedBatch) and whole.workers == 1
    parts = [batch.part(start, start + 5) for start in range(0, len(batch), 5)]
    assert [len(part) for part in parts] == [5, 5, 2]
    apart = [
        game
        for part in parts
        for game in play_here(
            LinearBatch.from_dict(json.loads(json.dumps(part.to_dict()))),
            threads=1,
            keep_going=lambda: True,
        ).games
    ]
    assert apart == whole.games
    assert len({game.lines for game in apart}) > 3, "the games differ from each other"
    assert any(game.pieces == batch.piece_cap and not game.game_over for game in apart)


def test_a_batch_stopped_midway_gives_nothing() -> None:
    assert play_here(a_batch(piece_cap=0), threads=1, keep_going=lambda: False) is None


def test_spreading_needs_the_workers_a_run_on_the_web_has() -> None:
    config = TrainConfig(algorithm="cem", cem_chunk_games=5, max_episodes=10)
    with pytest.raises(ConfigError) as raised:
        train(config)
    assert "evaluate" in raised.value.errors["cem_chunk_games"]


def test_the_noise_floor_keeps_every_weight_spread() -> None:
    """With no noise, the elite's spread collapses; the floor keeps each weight's standard
    deviation at least its fraction of the mean weights' size."""

    def last_generation(floor: float) -> dict:
        recorder = Recorder()
        config = TrainConfig(
            algorithm="cem",
            height=8,
            seed=3,
            cem_population=10,
            cem_elite_fraction=0.3,
            cem_noise=0.0,
            cem_noise_floor=floor,
            max_episodes=10 * 12,
            piece_cap=500,
            frames_per_second=0,
        )
        train(config, callbacks=[recorder])
        return recorder.episodes[-1].extra

    def least_ratio(row: dict) -> float:
        names = [key.removeprefix("cem/weight/") for key in row if key.startswith("cem/weight/")]
        mean = np.array([row[f"cem/weight/{name}"] for name in names])
        spread = np.array([row[f"cem/weight_std/{name}"] for name in names])
        return float(spread.min() / np.sqrt(np.mean(mean**2)))

    assert least_ratio(last_generation(0.0)) < 0.01
    assert least_ratio(last_generation(0.05)) >= 0.05 - 1e-12
