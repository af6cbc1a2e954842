"""Tetris engine and Gymnasium environment; importing it registers ``tetris_trainer/Tetris-v0``.

Framework-free: imports only numpy, numba and gymnasium.
"""

from gymnasium.envs.registration import register, registry

from trainer.tetris.env import TetrisEnv
from trainer.tetris.features import BCTS_WEIGHTS, DELLACHERIE_WEIGHTS, FEATURE_SETS
from trainer.tetris.game import Afterstates, TetrisGame, play_linear_games
from trainer.tetris.pieces import PIECE_NAMES

ENV_ID = "tetris_trainer/Tetris-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="trainer.tetris.env:TetrisEnv")

__all__ = [
    "BCTS_WEIGHTS",
    "DELLACHERIE_WEIGHTS",
    "ENV_ID",
    "FEATURE_SETS",
    "PIECE_NAMES",
    "Afterstates",
    "TetrisEnv",
    "TetrisGame",
    "play_linear_games",
]
