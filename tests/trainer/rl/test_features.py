"""Afterstate feature vectors built from the engine's feature sets (trainer/rl/features.py)."""

import numpy as np
import pytest

from trainer.rl.features import afterstate_features, feature_names
from trainer.tetris import BCTS_WEIGHTS, FEATURE_SETS, TetrisGame


def test_every_engine_feature_set_is_an_input_with_the_engines_features() -> None:
    game = TetrisGame(seed=5)
    game.play_linear(np.array([*BCTS_WEIGHTS, 1.0]), "dt", 30)
    assert not game.game_over
    for name, names in FEATURE_SETS.items():
        assert feature_names(name) == list(names)
        actions, features, lines = afterstate_features(game, name)
        after = game.afterstates(name)
        assert np.array_equal(actions, after.actions)
        assert np.array_equal(features, after.features)
        assert np.array_equal(lines, after.lines)


def test_joined_sets_read_a_shared_feature_once() -> None:
    assert feature_names("dt+classic") == [
        *FEATURE_SETS["dt"],
        "lines",
        "bumpiness",
        "aggregate_height",
    ]
    game = TetrisGame(seed=5)
    _, features, _ = afterstate_features(game, "dt+classic")
    dt, classic = game.afterstates("dt").features, game.afterstates("classic").features
    assert np.array_equal(features, np.concatenate([dt, classic[:, [0, 2, 3]]], axis=1))
    with pytest.raises(ValueError, match="dt2"):
        feature_names("dt2")
