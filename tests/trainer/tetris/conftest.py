"""Helpers shared by the Tetris engine tests."""

from collections.abc import Callable

import pytest

from trainer.tetris import PIECE_NAMES, TetrisGame


def build_frame(bottom_rows: list[str], width: int = 10, height: int = 20) -> str:
    """A frame whose lowest rows are bottom_rows (top row first) under empty rows."""
    assert all(len(row) == width for row in bottom_rows)
    return "." * width * (height - len(bottom_rows)) + "".join(bottom_rows)


@pytest.fixture
def game_with_board() -> Callable[..., TetrisGame]:
    """A factory: a game (10x20 unless told) holding the drawn board and current piece."""

    def make(
        bottom_rows: list[str], piece: str, width: int = 10, height: int = 20, seed: int = 0
    ) -> TetrisGame:
        game = TetrisGame(width, height, seed=seed)
        game.set_board(build_frame(bottom_rows, width, height), PIECE_NAMES.index(piece))
        return game

    return make
