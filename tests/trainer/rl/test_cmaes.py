"""CMA-ES as cem's search (`cem_method=cma_es`): it finds the optimum of an ill-conditioned,
rotated quadratic, its step size grows while steps agree, and a cem run with it learns,
checkpoints its whole search, and resumes to the very weights of a run never stopped."""

from pathlib import Path

import numpy as np
import pytest

from trainer.rl import ConfigError, TrainConfig, train
from trainer.rl.checkpoint import load_checkpoint
from trainer.rl.cmaes import CMAES

from .conftest import Recorder

# Four generations of 20 on a 10-row board: a second or two.
SHORT_CMA = {
    "cem_method": "cma_es",
    "max_minutes": 0.0,
    "max_episodes": 80,
    "cem_population": 20,
    "cem_elite_fraction": 0.5,
    "cem_train_height": 10,
    "frames_per_second": 0.0,
}


def rotated_quadratic(dimension: int, condition: float, seed: int) -> tuple[np.ndarray, object]:
    """An optimum and a fitness to maximize: minus a quadratic whose axes are rotated and
    scaled `condition` apart, so that no per-weight spread can follow its valley."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((dimension, dimension)))
    scales = condition ** (np.arange(dimension) / (dimension - 1) / 2)
    optimum = rng.uniform(-20, 20, dimension)

    def fitness(x: np.ndarray) -> np.ndarray:
        return -np.sum(((x - optimum) @ rotation * scales) ** 2, axis=1)

    return optimum, fitness


def test_cma_es_finds_the_optimum_of_a_rotated_ill_conditioned_quadratic() -> None:
    optimum, fitness = rotated_quadratic(8, condition=1e4, seed=3)
    rng = np.random.default_rng(0)
    search = CMAES.start(np.zeros(8), 10.0)
    for _ in range(300):
        samples = search.ask(rng, 100)
        search.tell(samples, fitness(samples), parents=10)
    assert np.abs(search.mean - optimum).max() < 1e-6
    # The covariance learned the valley: its axes are the quadratic's, condition 1e4 apart.
    values = np.linalg.eigvalsh(search.cov)
    assert 1e3 < values.max() / values.min() < 1e5


def test_the_step_size_grows_while_consecutive_steps_agree() -> None:
    rng = np.random.default_rng(0)
    search = CMAES.start(np.zeros(8), 1.0)
    slope = np.arange(1.0, 9.0)
    for _ in range(20):
        samples = search.ask(rng, 20)
        search.tell(samples, samples @ slope, parents=10)
    assert search.sigma > 10


def test_a_cma_es_run_learns_and_resumes_to_the_weights_of_a_run_never_stopped(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    whole = train(
        TrainConfig.from_preset("record", SHORT_CMA),
        callbacks=[recorder],
        checkpoint_dir=tmp_path / "whole",
    )
    generations = {m.extra["cem/generation"]: m.extra for m in recorder.episodes}
    assert len(generations) == 4 and whole.episodes == 80
    assert generations[4]["cem/population_mean_lines"] > generations[1]["cem/population_mean_lines"]
    assert all(g["cem/noise"] == 0 for g in generations.values())

    half = TrainConfig.from_preset("record", {**SHORT_CMA, "max_episodes": 40})
    train(half, checkpoint_dir=tmp_path / "half")
    saved = load_checkpoint(tmp_path / "half")["state"]
    assert saved["cma"]["generation"] == 2 and saved["cma"]["cov"].shape == (8, 8)
    train(
        TrainConfig.from_preset("record", SHORT_CMA),
        checkpoint_dir=tmp_path / "resumed",
        resume_from=tmp_path / "half",
    )
    resumed = load_checkpoint(tmp_path / "resumed")["state"]
    ended = load_checkpoint(tmp_path / "whole")["state"]
    assert np.array_equal(resumed["mean"].numpy(), ended["mean"].numpy())
    assert np.array_equal(resumed["cma"]["cov"].numpy(), ended["cma"]["cov"].numpy())
    std = np.sqrt(np.diag(ended["cma"]["cov"].numpy())) * ended["cma"]["sigma"]
    assert np.allclose(ended["std"].numpy(), std)


def test_resuming_with_the_other_method_is_a_config_error(tmp_path: Path) -> None:
    half = TrainConfig.from_preset("record", {**SHORT_CMA, "max_episodes": 20})
    train(half, checkpoint_dir=tmp_path / "cma")
    plain = TrainConfig.from_preset("record", {**SHORT_CMA, "cem_method": "cross_entropy"})
    with pytest.raises(ConfigError) as raised:
        train(plain, resume_from=tmp_path / "cma")
    assert "'cma_es'" in raised.value.errors["cem_method"]
    train(plain, checkpoint_dir=tmp_path / "ce")
    with pytest.raises(ConfigError) as raised:
        train(half, resume_from=tmp_path / "ce")
    assert "'cross_entropy'" in raised.value.errors["cem_method"]
