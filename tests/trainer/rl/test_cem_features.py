"""cem over the DT features (`cem_features`): 9 weights everywhere a cem policy goes, and
checkpoints from before the choice still load and resume as bcts."""

from pathlib import Path

import numpy as np
import pytest

from trainer.rl import ConfigError, TrainConfig, evaluate, load_policy, train
from trainer.rl.checkpoint import load_checkpoint, save_checkpoint
from trainer.rl.config import CEM_FEATURES
from trainer.rl.options import policy_options
from trainer.rl.policies import LinearPolicy
from trainer.tetris import FEATURE_SETS, TetrisGame

from .test_best_games import BestGames, assert_its_policy_plays_it, assert_replays_exactly

# Two generations of 20 on a 10-row board: a second or two.
SHORT_CEM = {
    "max_minutes": 0.0,
    "max_episodes": 40,
    "cem_population": 20,
    "cem_train_height": 10,
    "frames_per_second": 0.0,
}


def short_cem(**overrides: object) -> TrainConfig:
    return TrainConfig.from_preset("record", {**SHORT_CEM, **overrides})


def test_cem_feature_choices_are_engine_feature_sets_and_bcts_is_the_default() -> None:
    assert set(CEM_FEATURES) <= set(FEATURE_SETS)
    assert TrainConfig().cem_features == "bcts"
    assert TrainConfig.from_preset("record").cem_features == "bcts"
    assert TrainConfig.parse_overrides(["cem_features=dt"]) == {"cem_features": "dt"}
    with pytest.raises(ConfigError) as raised:
        TrainConfig(algorithm="cem", cem_features="classic")
    assert "bcts, dt" in raised.value.errors["cem_features"]


@pytest.fixture(scope="module")
def dt_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BestGames]:
    """A short cem run over the DT features, checkpointed, with its events."""
    out = tmp_path_factory.mktemp("cem_dt")
    recorder = BestGames()
    train(short_cem(cem_features="dt"), callbacks=[recorder], checkpoint_dir=out)
    return out, recorder


def test_cem_over_dt_checkpoints_nine_weights_that_play_and_evaluate(
    dt_run: tuple[Path, BestGames],
) -> None:
    out, recorder = dt_run
    saved = load_checkpoint(out)
    assert saved["config"]["cem_features"] == "dt" and saved["state"]["feature_set"] == "dt"
    assert saved["policy"]["feature_set"] == "dt"
    assert tuple(saved["policy"]["weights"].shape) == (9,)
    assert saved["state"]["mean"].shape == saved["state"]["std"].shape == (9,)
    policy = load_policy(out)
    assert isinstance(policy, LinearPolicy) and policy.feature_set == "dt"
    assert evaluate(out, games=2, height=10, piece_cap=300).games == 2
    options = policy_options(policy, TetrisGame(seed=1))
    assert all(list(o["terms"]) == list(FEATURE_SETS["dt"]) for o in options)
    last = recorder.episodes[-1].extra
    assert [k for k in last if k.startswith("cem/weight/")] == [
        f"cem/weight/{name}" for name in FEATURE_SETS["dt"]
    ]


def test_cem_over_dt_reports_best_games_its_kept_policy_plays(
    dt_run: tuple[Path, BestGames],
) -> None:
    _, recorder = dt_run
    assert recorder.best
    for best in recorder.best:
        assert best.policy["feature_set"] == "dt" and len(best.policy["weights"]) == 9
        assert_replays_exactly(best)
        assert_its_policy_plays_it(best)


def test_resuming_with_other_cem_features_is_a_config_error(
    dt_run: tuple[Path, BestGames],
) -> None:
    out, _ = dt_run
    with pytest.raises(ConfigError) as raised:
        train(short_cem(max_episodes=60), resume_from=out / "checkpoint.pt")
    assert "'dt'" in raised.value.errors["cem_features"]


def test_a_checkpoint_from_before_cem_features_loads_and_resumes_as_bcts(
    tmp_path: Path,
) -> None:
    train(short_cem(), checkpoint_dir=tmp_path / "run")
    old = load_checkpoint(tmp_path / "run")
    del old["config"]["cem_features"], old["state"]["feature_set"], old["format"]
    save_checkpoint(old, tmp_path / "old.pt")

    policy = load_policy(tmp_path / "old.pt")
    assert policy.feature_set == "bcts" and policy.weights.shape == (8,)
    config = TrainConfig.from_dict({**old["config"], "max_episodes": 60})
    assert config.cem_features == "bcts"
    resumed = train(config, checkpoint_dir=tmp_path / "resumed", resume_from=tmp_path / "old.pt")
    assert resumed.episodes == 60
    state = load_checkpoint(tmp_path / "resumed")["state"]
    assert state["feature_set"] == "bcts" and state["generation"] == 3
    with pytest.raises(ConfigError) as raised:
        train(
            TrainConfig.from_dict({**old["config"], "cem_features": "dt"}),
            resume_from=tmp_path / "old.pt",
        )
    assert "'bcts'" in raised.value.errors["cem_features"]
    assert np.isfinite(state["mean"].numpy()).all()
