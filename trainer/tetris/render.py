"""Frames of a game for people: text and RGB images with the pieces and the totals beside."""

import numpy as np

from trainer.tetris.game import TetrisGame
from trainer.tetris.pieces import PIECE_NAMES, piece_rotations

# RGB per cell value: empty, then I O T S Z J L in their usual guideline colours.
PALETTE = np.array(
    [
        (24, 24, 32),
        (0, 240, 240),
        (240, 240, 0),
        (160, 0, 240),
        (0, 240, 0),
        (240, 0, 0),
        (0, 0, 240),
        (240, 160, 0),
    ],
    np.uint8,
)
GRID_COLOUR = (48, 48, 60)
PANEL_COLOUR = (12, 12, 16)
TEXT_COLOUR = (220, 220, 230)
CELL_PIXELS = 16
PANEL_CELLS = 6
"""The side panel's width in board cells: room for a piece and a ten-digit score."""
PREVIEW_PIXELS = 12
TEXT_SCALE = 2

# A 3x5 pixel font: just the labels' letters and the digits.
_GLYPHS = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    "C": ("###", "#..", "#..", "#..", "###"),
    "E": ("###", "#..", "##.", "#..", "###"),
    "I": ("###", ".#.", ".#.", ".#.", "###"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": ("###", "#.#", "#.#", "#.#", "###"),
    "P": ("###", "#.#", "###", "#..", "#.."),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": ("###", "#..", "###", "..#", "###"),
    "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    " ": ("...", "...", "...", "...", "..."),
}
GLYPHS = {ch: np.array([[c == "#" for c in row] for row in rows]) for ch, rows in _GLYPHS.items()}


def ansi_frame(game: TetrisGame) -> str:
    """The board as text, top row first, then the pieces and the running totals."""
    frame = game.board_string()
    rows = [frame[i : i + game.width] for i in range(0, len(frame), game.width)]
    piece = "-" if game.game_over else PIECE_NAMES[game.current_piece]
    status = (
        f"piece {piece}  next {PIECE_NAMES[game.next_piece]}  "
        f"lines {game.lines}  score {game.score}  pieces {game.pieces}"
    )
    return "\n".join([*rows, status]) + "\n"


def rgb_frame(game: TetrisGame) -> np.ndarray:
    """uint8 [height, width, 3]: the board, and beside it the pieces and the totals.

    The board is `CELL_PIXELS` per cell with grid lines; the panel to its right is
    `PANEL_CELLS` cells wide and shows PIECE, NEXT, LINES and SCORE.
    """
    cells = game.colours()
    board = PALETTE[cells].repeat(CELL_PIXELS, axis=0).repeat(CELL_PIXELS, axis=1)
    board[CELL_PIXELS - 1 :: CELL_PIXELS, :] = GRID_COLOUR
    board[:, CELL_PIXELS - 1 :: CELL_PIXELS] = GRID_COLOUR
    panel = np.empty((board.shape[0], PANEL_CELLS * CELL_PIXELS, 3), np.uint8)
    panel[:] = PANEL_COLOUR
    y = 4
    current = None if game.game_over else game.current_piece
    for label, piece in (("PIECE", current), ("NEXT", game.next_piece)):
        y = _text(panel, y, label)
        if piece is not None:
            _piece(panel, y, piece)
        y += 3 * PREVIEW_PIXELS
    for label, value in (("LINES", game.lines), ("SCORE", game.score)):
        y = _text(panel, y, label)
        y = _text(panel, y, str(value))
    return np.concatenate([board, panel], axis=1)


def _text(image: np.ndarray, y: int, text: str) -> int:
    """Draw `text` at row y from the panel's left margin, clipped; the row below it."""
    pixel = TEXT_SCALE
    x = 4
    for ch in text:
        glyph = GLYPHS[ch].repeat(pixel, axis=0).repeat(pixel, axis=1)
        gh, gw = glyph.shape
        if x + gw > image.shape[1] or y + gh > image.shape[0]:
            break
        image[y : y + gh, x : x + gw][glyph] = TEXT_COLOUR
        x += gw + pixel
    return y + 5 * pixel + 4


def _piece(image: np.ndarray, y: int, piece: int) -> None:
    """Draw a piece in its spawn orientation at row y, in its colour."""
    shape = piece_rotations(piece)[0]
    height = 1 + max(row for row, _ in shape)
    size = PREVIEW_PIXELS
    for row, column in shape:
        top = y + (height - 1 - row) * size
        left = 4 + column * size
        if top + size <= image.shape[0]:
            image[top : top + size - 1, left : left + size - 1] = PALETTE[1 + piece]
