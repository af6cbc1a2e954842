"""Compile every engine kernel into numba's disk cache, ahead of the first game.

From a fresh clone the kernels take about half a minute of one core to compile, paid by
whichever process first plays a game, and by each process that starts playing before the
cache holds them. ``python -m trainer.tetris.warm`` compiles them all, once; from a warm
cache it loads them in about a second. The test suite runs it in the background as it
starts, on the core its first tests leave idle.

It plays through play_linear_games, so it must run in a process of its own (numba's
OpenMP pool is not fork-safe).
"""

import numpy as np

from trainer.tetris.features import FEATURE_SETS
from trainer.tetris.game import TetrisGame, play_linear_games


def compile_kernels() -> None:
    """Call every kernel once, through the engine's public methods."""
    game = TetrisGame(seed=1)  # reset_game
    game.action_mask()  # fill_action_mask
    for feature_set in FEATURE_SETS:
        game.features(feature_set)  # write_features
    after = game.afterstates("bcts", with_boards=True)  # scan_placements, boards
    game.step(int(after.actions[0]))  # place
    mask = np.zeros(game.num_actions, np.int8)
    game.step_and_mask(int(game.legal_actions()[0]), mask)  # step_with_mask
    game.set_board(game.board_string(), 0)  # load_board
    weights = np.ones(len(FEATURE_SETS["bcts"]))
    game.play_linear(weights, "bcts", 10)
    game.play_linear_recorded(weights, "bcts", 10)
    play_linear_games(weights, np.arange(2), feature_set="bcts", piece_cap=10)


if __name__ == "__main__":
    compile_kernels()
