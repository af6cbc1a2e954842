"""A slow, obviously correct pure-Python model of the rules and features, for the tests.

Every definition is written cell by cell straight from docs/RULES.md, with no bit tricks
and no shortcuts, so that the compiled kernels can be checked against it.
A board is a list of rows, row 0 at the bottom; a row is a list of bools, True for full.
"""

import itertools
import operator
from dataclasses import dataclass
from functools import cache

from trainer.tetris.pieces import NUM_PIECES, NUM_ROTATIONS, piece_rotations

Board = list[list[bool]]

SCORES = (0, 40, 100, 300, 1200)
MASK64 = 2**64 - 1


def empty_board(width: int, height: int) -> Board:
    """A board with no full cell."""
    return [[False] * width for _ in range(height)]


def board_from_frame(frame: str, width: int) -> Board:
    """The board of a frame (board_string()'s format: rows from the top, '.' empty)."""
    rows = [frame[i : i + width] for i in range(0, len(frame), width)]
    return [[cell != "." for cell in row] for row in reversed(rows)]


@cache
def piece_cells(piece: int, rotation: int) -> list[tuple[int, int]] | None:
    """(row, column) cells of a rotated piece from its bottom-left corner; None if a repeat."""
    shape = piece_rotations(piece)[rotation]
    return None if shape is None else sorted(shape)


@dataclass
class Placement:
    """What dropping one piece did."""

    board: Board
    landing_row: int
    piece_height: int
    lines: int
    piece_cells_cleared: int


def _collides(board: Board, cells: list[tuple[int, int]], column: int, row: int) -> bool:
    """Whether the piece at (row, column) overlaps a full cell or leaves the floor.

    Cells above the board are free: the piece falls from there.
    """
    height = len(board)
    for r, c in cells:
        y = row + r
        if y < 0 or (y < height and board[y][column + c]):
            return True
    return False


def place(board: Board, piece: int, rotation: int, column: int) -> Placement | None:
    """Drop the piece from above the board at column; None unless it ends inside the board."""
    height, width = len(board), len(board[0])
    cells = piece_cells(piece, rotation)
    if cells is None or column < 0 or column + max(c for _, c in cells) >= width:
        return None
    row = height
    while not _collides(board, cells, column, row - 1):
        row -= 1
    piece_height = 1 + max(r for r, _ in cells)
    if row + piece_height > height:
        return None
    after = [list(line) for line in board]
    for r, c in cells:
        after[row + r][column + c] = True
    full = [y for y in range(height) if all(after[y])]
    cleared_cells = sum(1 for r, _ in cells if row + r in full)
    kept = [line for y, line in enumerate(after) if y not in full]
    kept += empty_board(width, len(full))
    return Placement(kept, row, piece_height, len(full), cleared_cells)


def legal_actions(board: Board, piece: int) -> list[int]:
    """Action ids rotation * width + column whose placement is legal, ascending."""
    width = len(board[0])
    return [
        rotation * width + column
        for rotation in range(NUM_ROTATIONS)
        for column in range(width)
        if place(board, piece, rotation, column) is not None
    ]


def columns(board: Board) -> list[tuple[bool, ...]]:
    """The columns, left to right, each bottom cell first."""
    return list(zip(*board, strict=True))


def column_height(cells: tuple[bool, ...]) -> int:
    """1 + the row of the column's highest full cell, 0 if it has none."""
    return len(cells) - cells[::-1].index(True) if True in cells else 0


def transitions(cells: list[bool]) -> int:
    """Number of full/empty changes between neighbours along cells."""
    return sum(map(operator.ne, cells, cells[1:]))


def hole_rows(board: Board) -> list[int]:
    """The row of every hole: an empty cell with at least one full cell above it."""
    found = []
    for cells in columns(board):
        covered = False
        for y in reversed(range(len(cells))):
            if cells[y]:
                covered = True
            elif covered:
                found.append(y)
    return found


def holes(board: Board) -> int:
    """Empty cells with at least one full cell above them in their column."""
    return len(hole_rows(board))


def rows_with_holes(board: Board) -> int:
    """Rows holding at least one hole."""
    return len(set(hole_rows(board)))


def hole_depth(board: Board) -> int:
    """For each empty cell whose upper neighbour is full, the run of full cells above it."""
    total = 0
    for cells in columns(board):
        for y in range(len(cells) - 1):
            if not cells[y] and cells[y + 1]:
                run = y + 1
                while run < len(cells) and cells[run]:
                    run += 1
                total += run - (y + 1)
    return total


def row_transitions(board: Board) -> int:
    """Full/empty changes along every row, the side walls counting as full."""
    return sum(transitions([True, *line, True]) for line in board)


def column_transitions(board: Board) -> int:
    """Full/empty changes up every column, from the full floor to the empty space above."""
    return sum(transitions([True, *cells, False]) for cells in columns(board))


def cumulative_wells(board: Board) -> int:
    """Over well cells (empty, both side neighbours full or a wall): 1 + empty cells below."""
    height, width = len(board), len(board[0])
    total = 0
    for y in range(height):
        for c in range(width):
            left_full = c == 0 or board[y][c - 1]
            right_full = c == width - 1 or board[y][c + 1]
            if not board[y][c] and left_full and right_full:
                below = y - 1
                while below >= 0 and not board[below][c]:
                    below -= 1
                total += y - below
    return total


def bumpiness(board: Board) -> int:
    """Sum of height differences between neighbouring columns."""
    heights = [column_height(cells) for cells in columns(board)]
    return sum(abs(a - b) for a, b in itertools.pairwise(heights))


def aggregate_height(board: Board) -> int:
    """Sum of the column heights."""
    return sum(column_height(cells) for cells in columns(board))


def pattern_diversity(board: Board) -> int:
    """How many of the height differences -2 to 2 occur between neighbouring columns."""
    heights = [column_height(cells) for cells in columns(board)]
    differences = {right - left for left, right in itertools.pairwise(heights)}
    return len(differences & {-2, -1, 0, 1, 2})


def placement_features(placement: Placement) -> dict[str, float]:
    """Every feature of FEATURE_SETS, by name, for the board a placement made."""
    board = placement.board
    return {
        "lines": placement.lines,
        "holes": holes(board),
        "bumpiness": bumpiness(board),
        "aggregate_height": aggregate_height(board),
        "landing_height": placement.landing_row + (placement.piece_height - 1) / 2,
        "eroded_piece_cells": placement.lines * placement.piece_cells_cleared,
        "row_transitions": row_transitions(board),
        "column_transitions": column_transitions(board),
        "cumulative_wells": cumulative_wells(board),
        "hole_depth": hole_depth(board),
        "rows_with_holes": rows_with_holes(board),
        "pattern_diversity": pattern_diversity(board),
    }


class SplitMix64:
    """The splitmix64 generator (Steele, Lea & Flood 2014)."""

    def __init__(self, seed: int) -> None:
        self.state = seed % 2**64

    def next(self) -> int:
        """Next 64-bit output."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def piece_sequence(seed: int, randomizer: str, count: int) -> list[int]:
    """The first count pieces a game with this seed and randomizer deals."""
    rng = SplitMix64(seed)
    pieces: list[int] = []
    while len(pieces) < count:
        if randomizer == "uniform":
            pieces.append(rng.next() % NUM_PIECES)
        else:
            bag = list(range(NUM_PIECES))
            for i in range(NUM_PIECES - 1, 0, -1):
                j = rng.next() % (i + 1)
                bag[i], bag[j] = bag[j], bag[i]
            pieces.extend(bag)
    return pieces[:count]
