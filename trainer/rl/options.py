"""What a greedy policy weighed for one piece: every legal placement with its value.

The overlay of the viewer and the plays (the frame's `options`, docs/DESIGN.md) shows
these. Each option is `{"rotation", "column", "value", "chosen"}`, best first; a linear
policy adds `"terms"`, its value split into weight x feature, one term per feature. The
chosen placement is the one `choose()` takes: the first of the best values, in action order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from trainer.rl.features import afterstate_features
from trainer.rl.network import ValueNetwork
from trainer.rl.policies import LinearPolicy, Policy, ValueNetPolicy, linear_values
from trainer.tetris import FEATURE_SETS, TetrisGame

Option = dict[str, object]


def linear_options(game: TetrisGame, weights: np.ndarray, feature_set: str) -> list[Option]:
    """The options of a linear policy: value = features @ weights, with the terms."""
    if game.game_over:
        return []
    after = game.afterstates(feature_set)
    names = FEATURE_SETS[feature_set]
    terms = after.features.astype(np.float64) * np.asarray(weights, np.float64)
    values = linear_values(after, weights)
    extra = [{"terms": dict(zip(names, map(float, row), strict=True))} for row in terms]
    return _options(game.width, after.actions, values, extra)


@torch.no_grad()
def value_options(
    game: TetrisGame,
    network: ValueNetwork,
    features: str,
    gamma: float,
    candidates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> list[Option]:
    """The options of a value network: value = lines now + gamma * value of the afterstate.

    `candidates` are the game's `afterstate_features`, when the caller has them already.
    """
    if game.game_over:
        return []
    actions, inputs, lines = candidates or afterstate_features(game, features)
    values = lines + gamma * network(torch.from_numpy(inputs)).numpy()
    return _options(game.width, actions, values, None)


def policy_options(policy: Policy, game: TetrisGame) -> list[Option]:
    """The options of any greedy policy for the game's current piece."""
    if isinstance(policy, LinearPolicy):
        return linear_options(game, policy.weights, policy.feature_set)
    if isinstance(policy, ValueNetPolicy):
        return value_options(game, policy.network, policy.features, policy.gamma)
    raise TypeError(f"no options for a {type(policy).__name__}")


def _options(
    width: int, actions: np.ndarray, values: np.ndarray, extra: Sequence[dict] | None
) -> list[Option]:
    chosen = int(np.argmax(values))
    options = []
    for i, action in enumerate(actions.tolist()):
        option: Option = {
            "rotation": action // width,
            "column": action % width,
            "value": float(values[i]),
            "chosen": i == chosen,
        }
        if extra is not None:
            option.update(extra[i])
        options.append(option)
    # Best first; a stable sort keeps action order among equal values.
    options.sort(key=lambda option: -option["value"])
    return options
