"""What a policy weighed for a piece (trainer/rl/options.py), held to the reference rules,
and the training loop sending it only while a callback wants it."""

import numpy as np
import pytest
import torch

from trainer.rl import Callback, Frame, TrainConfig, TrainResult, load_policy, train
from trainer.rl.features import afterstate_features
from trainer.rl.options import linear_options, policy_options, value_options
from trainer.rl.policies import REFERENCE_POLICIES, LinearPolicy
from trainer.tetris import BCTS_WEIGHTS, FEATURE_SETS, PIECE_NAMES, TetrisGame, reference

from .conftest import SHORT_DQN

# A known board (10 wide, 8 high, top row first) with holes, a well and a line to clear.
KNOWN_BOARD = "".join(
    [
        "..........",
        "..........",
        "..........",
        "..........",
        "......Z...",
        "L....ZZ...",
        "LL.O.ZJJJ.",
        "LLIOOIIII.",
    ]
)


def known_game(piece: str) -> TetrisGame:
    game = TetrisGame(10, 8, "uniform", seed=3)
    game.set_board(KNOWN_BOARD, PIECE_NAMES.index(piece))
    return game


@pytest.mark.parametrize("piece", list(PIECE_NAMES))
@pytest.mark.parametrize("feature_set", ["dellacherie", "bcts", "dt"])
def test_linear_options_are_the_reference_rules_value_by_value(
    piece: str, feature_set: str
) -> None:
    dt_weights = np.array([*BCTS_WEIGHTS, 3.0])
    weights = dt_weights if feature_set == "dt" else REFERENCE_POLICIES[feature_set].weights
    game = known_game(piece)
    options = linear_options(game, weights, feature_set)
    board = reference.board_from_frame(KNOWN_BOARD, 10)
    expected = {}
    for action in reference.legal_actions(board, PIECE_NAMES.index(piece)):
        rotation, column = divmod(action, 10)
        placement = reference.place(board, PIECE_NAMES.index(piece), rotation, column)
        features = reference.placement_features(placement)
        terms = {
            n: w * features[n] for n, w in zip(FEATURE_SETS[feature_set], weights, strict=True)
        }
        expected[rotation, column] = terms
    assert {(o["rotation"], o["column"]) for o in options} == set(expected)
    for option in options:
        terms = expected[option["rotation"], option["column"]]
        assert option["terms"] == pytest.approx(terms, abs=1e-9)
        assert option["value"] == pytest.approx(sum(terms.values()), abs=1e-9)
    values = [option["value"] for option in options]
    assert values == sorted(values, reverse=True)
    # The chosen one is what the policy plays, and the best.
    (chosen,) = [o for o in options if o["chosen"]]
    action = LinearPolicy("p", weights, feature_set).choose([game])[0]
    assert divmod(action, 10) == (chosen["rotation"], chosen["column"])
    assert chosen is options[0]


def test_value_options_are_lines_plus_gamma_times_the_network(
    trained_dqn: TrainResult,
) -> None:
    policy = load_policy(trained_dqn.checkpoint)
    game = known_game("I")
    options = policy_options(policy, game)
    actions, features, lines = afterstate_features(game, policy.features)
    with torch.no_grad():
        values = lines + policy.gamma * policy.network(torch.from_numpy(features)).numpy()
    expected = {divmod(int(a), 10): float(v) for a, v in zip(actions, values, strict=True)}
    assert {(o["rotation"], o["column"]): o["value"] for o in options} == pytest.approx(expected)
    assert all("terms" not in option for option in options)
    (chosen,) = [o for o in options if o["chosen"]]
    assert divmod(policy.choose([game])[0], 10) == (chosen["rotation"], chosen["column"])
    assert options[0] is chosen


def test_a_finished_game_has_no_options() -> None:
    game = TetrisGame(4, 4, "uniform", seed=1)
    while not game.game_over:
        game.step(int(game.legal_actions()[0]))
    assert linear_options(game, BCTS_WEIGHTS, "bcts") == []
    assert value_options(game, None, "bcts", 0.9) == []


class Watcher(Callback):
    """Wants the options from its `from_frame`-th frame on."""

    def __init__(self, from_frame: int) -> None:
        self.from_frame = from_frame
        self.frames: list[Frame] = []

    def on_frame(self, f: Frame) -> None:
        self.frames.append(f)

    def wants_options(self) -> bool:
        return len(self.frames) >= self.from_frame


@pytest.mark.parametrize("algorithm", ["dqn", "cem"])
def test_frames_carry_options_only_while_a_callback_wants_them(algorithm: str) -> None:
    overrides = {"max_minutes": 0.04, "frames_per_second": 30.0}
    if algorithm == "cem":
        preset, overrides = "record", {**overrides, "cem_population": 20, "max_minutes": 0.1}
    else:
        preset, overrides = "quick", {**overrides, "learning_starts": 200, "batch_size": 64}
    watcher = Watcher(from_frame=3)
    train(TrainConfig.from_preset(preset, overrides), callbacks=[watcher])
    frames = watcher.frames
    assert len(frames) > 5
    assert all(f.options is None for f in frames[:3])
    assert all(f.options for f in frames[3:] if f.piece)
    frame = frames[-1]
    assert frame.piece in PIECE_NAMES
    assert sum(option["chosen"] for option in frame.options) == 1
    assert ("terms" in frame.options[0]) == (algorithm == "cem")


def test_nobody_watching_means_no_options_are_worked_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    monkeypatch.setattr("trainer.rl.dqn.value_options", lambda *args: calls.append(args) or [])
    watcher = Watcher(from_frame=10**9)
    overrides = {**SHORT_DQN, "max_pieces": 800, "frames_per_second": 60.0}
    train(TrainConfig.from_preset("quick", overrides), callbacks=[watcher])
    assert watcher.frames and calls == []


def test_the_learners_report_their_own_view(trained_dqn: TrainResult) -> None:
    class Episodes(Callback):
        def __init__(self) -> None:
            self.extra: list[dict] = []

        def on_episode(self, m) -> None:
            self.extra.append(m.extra)

    cem = Episodes()
    config = {"max_episodes": 40, "cem_population": 20, "height": 8, "frames_per_second": 0.0}
    train(TrainConfig.from_preset("record", config), callbacks=[cem])
    last = cem.extra[-1]
    for name in FEATURE_SETS["bcts"]:
        assert np.isfinite(last[f"cem/weight/{name}"]) and last[f"cem/weight_std/{name}"] > 0

    dqn = Episodes()
    train(TrainConfig.from_preset("quick", {**SHORT_DQN, "max_pieces": 3_000}), callbacks=[dqn])
    learning = [extra for extra in dqn.extra if "dqn/td_error" in extra]
    assert learning and all(extra["dqn/td_error"] >= 0 for extra in learning)
    assert all(np.isfinite(extra["dqn/value"]) for extra in dqn.extra)
