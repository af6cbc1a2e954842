"""The Gymnasium environment tetris_trainer/Tetris-v0."""

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from trainer.tetris import ENV_ID, PIECE_NAMES, TetrisEnv, render

REPO_ROOT = Path(__file__).resolve().parents[3]


def play(env: gym.Env, steps: int, seed: int) -> list[tuple]:
    """Random legal steps (resetting at game over); return what each step gave back."""
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    trace = []
    for _ in range(steps):
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, _, info = env.step(action)
        trace.append((obs["board"].tobytes(), obs["piece"], reward, terminated, info["lines"]))
        if terminated:
            _, info = env.reset()
    return trace


@pytest.mark.parametrize("render_mode", [None, "ansi", "rgb_array"])
def test_env_passes_gymnasium_check_env(render_mode: str | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ENV_ID, render_mode=render_mode).unwrapped, skip_render_check=False)


def test_importing_the_engine_registers_the_env_and_loads_no_django() -> None:
    code = (
        "import sys, gymnasium, trainer.tetris\n"
        "assert 'django' not in sys.modules\n"
        "env = gymnasium.make('tetris_trainer/Tetris-v0', width=8, height=12)\n"
        "assert env.unwrapped.game.width == 8\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=120)


def test_same_seed_gives_the_same_episodes() -> None:
    first = play(gym.make(ENV_ID), 400, seed=3)
    assert first == play(gym.make(ENV_ID), 400, seed=3)
    assert first != play(gym.make(ENV_ID), 400, seed=4)


def test_env_pickles_mid_episode_and_continues_identically() -> None:
    env = TetrisEnv(randomizer="bag7")
    play(env, 30, seed=5)
    copy = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(0)
    for _ in range(100):
        action = int(rng.choice(np.flatnonzero(env.game.action_mask())))
        a, b = env.step(action), copy.step(action)
        assert a[0]["board"].tobytes() == b[0]["board"].tobytes()
        assert a[1:4] == b[1:4] and a[4]["lines"] == b[4]["lines"]
        if a[2]:
            break


def test_info_mask_marks_exactly_the_legal_placements() -> None:
    env = TetrisEnv()
    obs, info = env.reset(seed=1)
    for _ in range(50):
        assert info["action_mask"].dtype == np.int8
        assert np.array_equal(info["action_mask"], env.game.action_mask())
        assert obs["piece"] == env.game.current_piece
        action = int(np.flatnonzero(info["action_mask"])[-1])
        obs, _, terminated, _, info = env.step(action)
        if terminated:
            break


def test_reward_is_the_lines_cleared() -> None:
    env = TetrisEnv()
    env.reset(seed=0)
    env.game.set_board("." * 180 + "SSSSSSSSS." * 2, PIECE_NAMES.index("I"))
    _, reward, terminated, _, info = env.step(1 * 10 + 9)
    assert (reward, terminated, info["lines"], info["score"], info["pieces"]) == (
        2.0,
        False,
        2,
        100,
        1,
    )


def test_illegal_action_ends_the_episode_without_reward() -> None:
    env = TetrisEnv()
    env.reset(seed=0)
    env.game.set_board("." * 200, PIECE_NAMES.index("O"))
    obs, reward, terminated, truncated, info = env.step(1 * 10)  # O has one rotation
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert not info["action_mask"].any()
    assert not obs["board"].any()


def test_afterstates_come_from_the_env() -> None:
    env = TetrisEnv()
    _, info = env.reset(seed=2)
    after = env.unwrapped.afterstates("dellacherie", with_boards=True)
    assert after.actions.tolist() == np.flatnonzero(info["action_mask"]).tolist()
    assert after.features.shape == (len(after.actions), 6)
    assert after.features.dtype == np.float32
    assert after.boards.shape == (len(after.actions), 20, 10)


def test_ansi_render_draws_the_frame_and_the_totals() -> None:
    env = TetrisEnv(render_mode="ansi")
    env.reset(seed=0)
    env.game.set_board("." * 200, PIECE_NAMES.index("T"))
    env.step(0)
    lines = env.render().splitlines()
    assert len(lines) == 21
    assert lines[:18] == ["." * 10] * 18
    assert lines[18:20] == [".T........", "TTT......."]
    piece, following = (PIECE_NAMES[p] for p in (env.game.current_piece, env.game.next_piece))
    assert lines[20] == f"piece {piece}  next {following}  lines 0  score 0  pieces 1"


def test_rgb_render_paints_each_piece_in_its_colour() -> None:
    env = TetrisEnv(render_mode="rgb_array")
    env.reset(seed=0)
    env.game.set_board("." * 200, PIECE_NAMES.index("I"))
    env.step(0)
    image = env.render()
    assert image.shape == (20 * 16, (10 + 6) * 16, 3) and image.dtype == np.uint8
    bottom_left = image[-8, 8]
    empty = image[8, 8]
    assert bottom_left.tolist() == [0, 240, 240] and empty.tolist() == [24, 24, 32]


def panel_colours(image: np.ndarray, top: int, bottom: int) -> set[tuple[int, ...]]:
    """The colours in rows top to bottom of the panel beside a 10-wide board."""
    return {tuple(c) for c in image[top:bottom, 10 * 16 :].reshape(-1, 3).tolist()}


def test_rgb_render_shows_the_piece_to_place_the_next_and_the_score() -> None:
    env = TetrisEnv(render_mode="rgb_array")
    env.reset(seed=0)
    env.game.set_board("." * 180 + "SSSSSSSSS." * 2, PIECE_NAMES.index("I"))
    before = env.render()
    colour = tuple(render.PALETTE[1 + PIECE_NAMES.index("I")].tolist())
    assert colour in panel_colours(before, 18, 54)  # PIECE
    following = tuple(render.PALETTE[1 + env.game.next_piece].tolist())
    assert following in panel_colours(before, 68, 104)  # NEXT
    env.step(1 * 10 + 9)  # clears 2 lines: 100 points
    after = env.render()
    assert not np.array_equal(before[118:132, 160:], after[118:132, 160:])  # the lines
    assert not np.array_equal(before[146:160, 160:], after[146:160, 160:])  # the score
    assert before[:, :160].shape == after[:, :160].shape


def test_action_masks_is_the_bool_mask_of_the_legal_placements() -> None:
    env = gym.make(ENV_ID)
    _, info = env.reset(seed=6)
    for _ in range(20):
        masks = env.unwrapped.action_masks()
        assert masks.dtype == np.bool_
        assert masks.tolist() == info["action_mask"].astype(bool).tolist()
        _, _, terminated, _, info = env.step(int(np.flatnonzero(masks)[0]))
        assert info["illegal_action"] is False
        if terminated:
            break


@pytest.mark.parametrize(
    ("option", "penalty", "reward", "ends"),
    [("end", 1.0, 0.0, True), ("noop", 1.0, 0.0, False), ("penalty", 2.5, -2.5, False)],
)
def test_illegal_action_is_handled_as_asked_and_said_in_info(
    option: str, penalty: float, reward: float, ends: bool
) -> None:
    env = TetrisEnv(illegal_action=option, illegal_penalty=penalty)
    env.reset(seed=0)
    env.game.set_board("." * 180 + "SSSSSSSSS." * 2, PIECE_NAMES.index("I"))
    env.reset(seed=0)
    board, piece, mask = env.game.board_string(), env.game.current_piece, env.action_masks()
    illegal = int(np.flatnonzero(~mask)[0])
    _, got, terminated, truncated, info = env.step(illegal)
    assert (got, terminated, truncated, info["illegal_action"]) == (reward, ends, False, True)
    if not ends:  # nothing happened: the same piece waits on the same board
        assert env.game.board_string() == board and env.game.current_piece == piece
        assert env.action_masks().tolist() == mask.tolist() and info["pieces"] == 0
        _, got, _, _, info = env.step(int(np.flatnonzero(mask)[0]))
        assert info["illegal_action"] is False and info["pieces"] == 1


@pytest.mark.parametrize(
    "arguments",
    [
        {"illegal_action": "skip"},
        {"illegal_penalty": float("nan")},
        {"features": "pixels"},
        {"feature_set": "mine"},
        {"render_mode": "human"},
    ],
)
def test_bad_options_are_refused_by_name(arguments: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(arguments))):
        TetrisEnv(**arguments)


@pytest.mark.parametrize(
    ("features", "feature_set"), [("afterstates", "bcts"), ("board", "bcts"), ("afterstates", "dt")]
)
def test_feature_observations_pass_check_env(features: str, feature_set: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ENV_ID, features=features, feature_set=feature_set).unwrapped)


def test_afterstate_features_are_each_actions_afterstate() -> None:
    env = TetrisEnv(features="afterstates", feature_set="dellacherie")
    obs, info = env.reset(seed=4)
    for _ in range(30):
        assert env.observation_space.contains(obs)
        table = obs["afterstate_features"]
        assert table.shape == (40, 6) and table.dtype == np.float32
        after = env.game.afterstates("dellacherie")
        assert np.array_equal(table[after.actions], after.features)
        illegal = np.flatnonzero(info["action_mask"] == 0)
        assert not table[illegal].any()
        obs, _, terminated, _, info = env.step(int(after.actions[0]))
        if terminated:
            break


def test_board_features_are_the_boards_own() -> None:
    env = TetrisEnv(features="board")
    obs, _ = env.reset(seed=4)
    env.step(int(np.flatnonzero(env.action_masks())[0]))
    obs, *_ = env.step(int(np.flatnonzero(env.action_masks())[0]))
    assert obs["board_features"].tolist() == env.game.features("bcts").tolist()
    assert obs["board_features"].shape == (8,)
