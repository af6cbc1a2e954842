"""Afterstate feature vectors for the value network, built from the engine's feature sets."""

from __future__ import annotations

import numpy as np

from trainer.tetris import FEATURE_SETS, TetrisGame


# A value-net input names one engine feature set or joins two with "+"; a feature that two
# sets share (holes) is read once.
def engine_sets(features: str) -> tuple[str, ...]:
    """The engine feature sets behind a value-net input name such as "bcts+classic"."""
    sets = tuple(features.split("+"))
    unknown = [name for name in sets if name not in FEATURE_SETS]
    if unknown:
        known = list(FEATURE_SETS)
        raise ValueError(f"unknown feature set {unknown[0]!r}; expected one of {known}")
    return sets


def _columns(features: str) -> list[tuple[int, int]]:
    """(set index, column) of every feature kept, skipping names an earlier set has."""
    seen, columns = set(), []
    for set_index, name in enumerate(engine_sets(features)):
        for column, feature in enumerate(FEATURE_SETS[name]):
            if feature not in seen:
                seen.add(feature)
                columns.append((set_index, column))
    return columns


def feature_names(features: str) -> list[str]:
    """Names of the value network's inputs, in order."""
    sets = engine_sets(features)
    return [FEATURE_SETS[sets[s]][c] for s, c in _columns(features)]


def afterstate_features(
    game: TetrisGame, features: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(actions, float32 features [n, k], lines [n]) of every legal placement of the piece."""
    sets = engine_sets(features)
    first = game.afterstates(sets[0])
    if len(sets) == 1:
        return first.actions, first.features, first.lines
    parts = [first.features] + [game.afterstates(name).features for name in sets[1:]]
    columns = _columns(features)
    stacked = np.concatenate(parts, axis=1)
    offsets = np.cumsum([0] + [part.shape[1] for part in parts])
    keep = [offsets[s] + c for s, c in columns]
    return first.actions, stacked[:, keep], first.lines
