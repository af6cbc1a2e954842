"""The seven tetrominoes, their rotations and the lookup tables the kernels use."""

import numpy as np

PIECE_NAMES = "IOTSZJL"
"""Piece id ``i`` is ``PIECE_NAMES[i]``."""

NUM_PIECES = len(PIECE_NAMES)
NUM_ROTATIONS = 4

# Spawn orientations, top row first ('#' = cell).
SPAWN_SHAPES: dict[str, tuple[str, ...]] = {
    "I": ("####",),
    "O": ("##", "##"),
    "T": (".#.", "###"),
    "S": (".##", "##."),
    "Z": ("##.", ".##"),
    "J": ("#..", "###"),
    "L": ("..#", "###"),
}

Shape = frozenset[tuple[int, int]]
"""Cells as (row, column) with row 0 the piece's bottom row and column 0 its leftmost column."""


def shape_from_rows(rows: tuple[str, ...]) -> Shape:
    """Cells of a shape drawn top row first."""
    height = len(rows)
    return frozenset(
        (height - 1 - r, c) for r, line in enumerate(rows) for c, ch in enumerate(line) if ch == "#"
    )


def rotate_clockwise(shape: Shape) -> Shape:
    """The shape turned 90 degrees clockwise, moved back to the origin."""
    turned = [(-c, r) for r, c in shape]
    min_r = min(r for r, _ in turned)
    min_c = min(c for _, c in turned)
    return frozenset((r - min_r, c - min_c) for r, c in turned)


def piece_rotations(piece: int) -> list[Shape | None]:
    """The four rotations of a piece; a rotation equal to an earlier one is None."""
    shape = shape_from_rows(SPAWN_SHAPES[PIECE_NAMES[piece]])
    rotations: list[Shape | None] = []
    seen: list[Shape] = []
    for _ in range(NUM_ROTATIONS):
        rotations.append(None if shape in seen else shape)
        seen.append(shape)
        shape = rotate_clockwise(shape)
    return rotations


def _tables() -> tuple[np.ndarray, ...]:
    """Per (piece, rotation): valid, width, height, row masks, column bottoms and tops."""
    valid = np.zeros((NUM_PIECES, NUM_ROTATIONS), np.bool_)
    width = np.zeros((NUM_PIECES, NUM_ROTATIONS), np.int64)
    height = np.zeros((NUM_PIECES, NUM_ROTATIONS), np.int64)
    row_masks = np.zeros((NUM_PIECES, NUM_ROTATIONS, 4), np.uint32)
    bottoms = np.zeros((NUM_PIECES, NUM_ROTATIONS, 4), np.int64)
    tops = np.zeros((NUM_PIECES, NUM_ROTATIONS, 4), np.int64)
    for p in range(NUM_PIECES):
        for r, shape in enumerate(piece_rotations(p)):
            if shape is None:
                continue
            valid[p, r] = True
            width[p, r] = 1 + max(c for _, c in shape)
            height[p, r] = 1 + max(row for row, _ in shape)
            for row, c in shape:
                row_masks[p, r, row] |= np.uint32(1 << c)
            for c in range(width[p, r]):
                column = [row for row, cc in shape if cc == c]
                bottoms[p, r, c] = min(column)
                tops[p, r, c] = max(column) + 1
    for table in (valid, width, height, row_masks, bottoms, tops):
        table.flags.writeable = False
    return valid, width, height, row_masks, bottoms, tops


ROTATION_VALID, PIECE_WIDTH, PIECE_HEIGHT, PIECE_ROW_MASKS, PIECE_BOTTOMS, PIECE_TOPS = _tables()
