"""Afterstates and features against the pure-Python reference (trainer/tetris/reference.py)."""

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer.tetris import BCTS_WEIGHTS, FEATURE_SETS, PIECE_NAMES, TetrisGame
from trainer.tetris import reference as ref

BOARDS_PER_EXAMPLE = 50
EXAMPLES = 40  # 2,000 random boards in all (10,000 took 40 s of make test, 5,000 21 s)
SIZES = [(10, 20)] * 4 + [(4, 4), (5, 9), (6, 12), (8, 16), (12, 6), (16, 24)]

GameWithBoard = Callable[..., TetrisGame]


def random_board(rng: np.random.Generator, width: int, height: int) -> ref.Board:
    """A board with ragged columns, holes and no full row; sometimes near the top."""
    if rng.random() < 0.3:
        heights = rng.integers(0, height + 1, width)
    else:
        heights = rng.integers(0, max(2, height // 2), width) + rng.integers(0, 3)
    fill = rng.uniform(0.4, 1.0)
    board = [
        [
            bool(y < heights[c] and (y == heights[c] - 1 or rng.random() < fill))
            for c in range(width)
        ]
        for y in range(height)
    ]
    for row in board:
        if all(row):
            row[rng.integers(width)] = False
    return board


def frame_of(board: ref.Board, piece_char: str = "S") -> str:
    """board as a frame, every full cell drawn as piece_char."""
    return "".join("".join(piece_char if full else "." for full in row) for row in board[::-1])


def assert_afterstates_match_reference(board: ref.Board, piece: int) -> None:
    """The engine's afterstates of piece on board, in every feature set, equal the reference."""
    height, width = len(board), len(board[0])
    game = TetrisGame(width, height, seed=0)
    game.set_board(frame_of(board), piece)
    actions = ref.legal_actions(board, piece)
    placements = [ref.place(board, piece, a // width, a % width) for a in actions]
    expected = [ref.placement_features(p) for p in placements]
    context = f"piece {PIECE_NAMES[piece]} on\n" + "\n".join(
        frame_of(board)[i : i + width] for i in range(0, width * height, width)
    )
    for feature_set, names in FEATURE_SETS.items():
        after = game.afterstates(feature_set, with_boards=True)
        assert after.actions.tolist() == actions, context
        assert after.lines.tolist() == [p.lines for p in placements], context
        boards = np.array([p.board[::-1] for p in placements], np.uint8).reshape(-1, height, width)
        assert np.array_equal(after.boards, boards), context
        want = np.array([[f[name] for name in names] for f in expected], np.float32)
        assert np.array_equal(after.features, want.reshape(-1, len(names))), (feature_set, context)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from(SIZES))
def test_afterstates_and_features_equal_the_reference_on_random_boards(
    seed: int, size: tuple[int, int]
) -> None:
    rng = np.random.default_rng(seed)
    width, height = size
    for _ in range(BOARDS_PER_EXAMPLE):
        assert_afterstates_match_reference(
            random_board(rng, width, height), int(rng.integers(len(PIECE_NAMES)))
        )


def test_cumulative_wells_match_mdptetris_worked_example() -> None:
    # The board documented with get_well_sums_dellacherie() in MDPTetris: wells sum to 20.
    picture = [
        "........",
        "........",
        "...X....",
        "...XX...",
        ".X.XX...",
        ".XXXXX.X",
        ".XXXXX.X",
        "XXXXX..X",
        "...XXX.X",
        "X.X..X.X",
    ]
    board = [[ch == "X" for ch in row] for row in picture[::-1]]
    assert ref.cumulative_wells(board) == 20
    game = TetrisGame(8, 10, seed=0)
    game.set_board(frame_of(board), 0)
    assert game.features("dellacherie")[5] == 20


def test_empty_board_has_only_the_wall_and_floor_transitions() -> None:
    game = TetrisGame(seed=0)
    features = dict(zip(FEATURE_SETS["bcts"], game.features("bcts"), strict=True))
    assert features == {
        "landing_height": 0,
        "eroded_piece_cells": 0,
        "row_transitions": 40,
        "column_transitions": 10,
        "holes": 0,
        "cumulative_wells": 0,
        "hole_depth": 0,
        "rows_with_holes": 0,
    }


@pytest.mark.parametrize(
    ("picture", "holes", "hole_depth", "rows_with_holes"),
    [
        ([".X", "XX"], 0, 0, 0),
        (["X.", ".."], 1, 1, 1),
        (["XX", "X.", ".."], 3, 3, 2),
        (["X.", "X.", "..", "..", "XX"], 2, 2, 2),
        (["X.", "..", "X.", "..", ".X"], 3, 2, 3),
    ],
)
def test_holes_and_hole_depth_follow_mdptetris(
    picture: list[str], holes: int, hole_depth: int, rows_with_holes: int
) -> None:
    # Padded to a legal width: a hole's depth is the run of full cells right above it.
    rows = [row + "...." for row in picture]
    board = [[ch == "X" for ch in row] for row in rows[::-1]]
    board += ref.empty_board(6, 8 - len(board))
    assert (ref.holes(board), ref.hole_depth(board), ref.rows_with_holes(board)) == (
        holes,
        hole_depth,
        rows_with_holes,
    )
    game = TetrisGame(6, 8, seed=0)
    game.set_board(frame_of(board), 0)
    assert game.features("bcts")[[4, 6, 7]].tolist() == [holes, hole_depth, rows_with_holes]


@pytest.mark.parametrize(
    ("picture", "diversity"),
    [
        # Heights 0 1 3 3 2 6: differences +1 +2 0 -1 +4; the +4 is not a pattern. 4.
        (["     X", "     X", "     X", "  XX X", "  XXXX", " XXXXX"], 4),
        # Heights 2 2 2 2 2 0 over holes: differences 0 0 0 0 -2. Holes do not count. 2.
        (["XXXXX ", " X X  "], 2),
        # Heights 0 3 0 3 0 3: every difference is +3 or -3. 0.
        ([" X X X", " X X X", " X X X"], 0),
        # Heights 0 2 1 1 2 4 6 4 3 5: differences +2 -1 0 +1 +2 +2 -2 -1 +2. All five: 5.
        (
            [
                "      X   ",
                "      X  X",
                "     XXX X",
                "     XXXXX",
                " X  XXXXXX",
                " XXXXXXXXX",
            ],
            5,
        ),
    ],
)
def test_pattern_diversity_counts_the_height_differences_seen_from_minus_2_to_2(
    picture: list[str], diversity: int
) -> None:
    # MDPTetris's get_diversity: which of -2, -1, 0, 1, 2 the neighbouring columns' height
    # differences take, counted once each.
    width = len(picture[0])
    board = [[ch == "X" for ch in row] for row in picture[::-1]]
    board += ref.empty_board(width, 20 - len(board))
    assert ref.pattern_diversity(board) == diversity
    game = TetrisGame(width, 20, seed=0)
    game.set_board(frame_of(board), 0)
    features = dict(zip(FEATURE_SETS["dt"], game.features("dt").tolist(), strict=True))
    assert features["pattern_diversity"] == diversity
    bcts = dict(zip(FEATURE_SETS["bcts"], game.features("bcts").tolist(), strict=True))
    assert {name: features[name] for name in bcts} == bcts  # dt = bcts + pattern diversity


def test_pattern_diversity_is_measured_after_the_lines_clear(
    game_with_board: GameWithBoard,
) -> None:
    game = game_with_board(["SSSSSSSSS.", "SSSSSSSSS."], "I")
    # Heights 2 ... 2 0: differences 0 and -2 before the placement.
    assert game.features("dt")[8] == 2
    after = game.afterstates("dt")
    # A vertical I in the last column clears both rows and keeps two cells there:
    # heights 0 ... 0 2, differences 0 and +2.
    upright_in_last_column = after.actions.tolist().index(1 * 10 + 9)
    assert after.features[upright_in_last_column, 8] == 2
    game.step(1 * 10 + 9)
    assert game.board_string()[-20:] == ".........I" * 2
    assert game.features("dt")[8] == 2
    # A flat I on the left instead: heights 3 3 3 3 2 2 2 2 2 0 -> 0, -1, -2: 3.
    flat_on_the_left = after.actions.tolist().index(0)
    assert after.features[flat_on_the_left, 8] == 3


def test_move_features_describe_the_last_placement(game_with_board: GameWithBoard) -> None:
    game = game_with_board(["SSSSSSSSS.", "SSSSSSSSS."], "I")
    game.step(1 * 10 + 9)  # vertical I: two of its cells complete two lines
    landing_height, eroded = game.features("bcts")[:2]
    assert (landing_height, eroded) == (1.5, 2 * 2)
    assert game.features("classic")[0] == 2


def test_game_trajectories_match_the_reference_rules() -> None:
    # Mostly greedy BCTS play with random moves mixed in: lines get cleared and games end.
    total_lines = 0
    for seed in range(8):
        width, height = (6, 8) if seed % 2 else (10, 20)
        game = TetrisGame(width, height, randomizer=("uniform", "bag7")[seed % 2], seed=seed)
        pieces = ref.piece_sequence(seed, game.randomizer, 1_000)
        board = ref.empty_board(width, height)
        rng = np.random.default_rng(seed)
        score = 0
        while game.pieces < 999:
            piece = pieces[game.pieces]
            assert game.current_piece == piece
            legal = ref.legal_actions(board, piece)
            assert game.legal_actions().tolist() == legal
            assert game.game_over == (not legal)
            if not legal:
                break
            after = game.afterstates("bcts")
            greedy = int(after.actions[np.argmax(after.features @ BCTS_WEIGHTS)])
            action = int(rng.choice(legal)) if rng.random() < 0.1 else greedy
            placement = ref.place(board, piece, action // width, action % width)
            board = placement.board
            score += ref.SCORES[placement.lines]
            assert game.step(action) == placement.lines
            assert game.board().tolist() == [[int(c) for c in row] for row in board[::-1]]
            assert game.score == score
        total_lines += game.lines
        assert game.game_over
    assert total_lines > 200
