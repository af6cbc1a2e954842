"""The tetrominoes and their rotations."""

import pytest

from trainer.tetris.pieces import (
    PIECE_BOTTOMS,
    PIECE_HEIGHT,
    PIECE_NAMES,
    PIECE_ROW_MASKS,
    PIECE_TOPS,
    PIECE_WIDTH,
    ROTATION_VALID,
    SPAWN_SHAPES,
    piece_rotations,
    rotate_clockwise,
    shape_from_rows,
)


def test_each_piece_has_its_number_of_distinct_rotations() -> None:
    distinct = {
        name: sum(shape is not None for shape in piece_rotations(i))
        for i, name in enumerate(PIECE_NAMES)
    }
    assert distinct == {"I": 2, "O": 1, "T": 4, "S": 2, "Z": 2, "J": 4, "L": 4}


@pytest.mark.parametrize("name", PIECE_NAMES)
def test_four_clockwise_turns_give_back_the_spawn_shape(name: str) -> None:
    spawn = shape_from_rows(SPAWN_SHAPES[name])
    shape = spawn
    for _ in range(4):
        shape = rotate_clockwise(shape)
    assert shape == spawn


@pytest.mark.parametrize(
    ("name", "rotation", "picture"),
    [
        ("T", 1, ("#.", "##", "#.")),
        ("T", 2, ("###", ".#.")),
        ("T", 3, (".#", "##", ".#")),
        ("I", 1, ("#", "#", "#", "#")),
        ("J", 1, ("##", "#.", "#.")),
        ("L", 1, ("#.", "#.", "##")),
        ("S", 1, ("#.", "##", ".#")),
        ("Z", 1, (".#", "##", "#.")),
    ],
)
def test_rotation_turns_the_piece_clockwise(
    name: str, rotation: int, picture: tuple[str, ...]
) -> None:
    assert piece_rotations(PIECE_NAMES.index(name))[rotation] == shape_from_rows(picture)


def test_kernel_tables_describe_each_rotation() -> None:
    for piece in range(len(PIECE_NAMES)):
        for rotation, shape in enumerate(piece_rotations(piece)):
            assert ROTATION_VALID[piece, rotation] == (shape is not None)
            if shape is None:
                continue
            cells = {
                (row, c)
                for row in range(4)
                for c in range(4)
                if PIECE_ROW_MASKS[piece, rotation, row] >> c & 1
            }
            assert cells == shape
            assert PIECE_WIDTH[piece, rotation] == 1 + max(c for _, c in shape)
            assert PIECE_HEIGHT[piece, rotation] == 1 + max(r for r, _ in shape)
            for c in range(PIECE_WIDTH[piece, rotation]):
                rows_in_column = [r for r, cc in shape if cc == c]
                assert PIECE_BOTTOMS[piece, rotation, c] == min(rows_in_column)
                assert PIECE_TOPS[piece, rotation, c] == max(rows_in_column) + 1
