"""TetrisGame: dropping, collisions, line clears, scoring, game over, seeding, pickling."""

import pickle
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from trainer.tetris import (
    BCTS_WEIGHTS,
    DELLACHERIE_WEIGHTS,
    PIECE_NAMES,
    TetrisGame,
    play_linear_games,
)
from trainer.tetris import reference as ref

PIECE = {name: i for i, name in enumerate(PIECE_NAMES)}
# Rows 0-18 each miss one cell, staggered, so nothing is full and every column is tall.
STAGGERED = ["." * 10] + [
    "".join("." if c == y % 10 else "Z" for c in range(10)) for y in range(18, -1, -1)
]

GameWithBoard = Callable[..., TetrisGame]


def bottom_rows(game: TetrisGame, count: int) -> list[str]:
    """The lowest count rows of the game's frame, top row first."""
    frame = game.board_string()
    w = game.width
    return [frame[i : i + w] for i in range(len(frame) - count * w, len(frame), w)]


def random_legal_play(game: TetrisGame, steps: int, seed: int) -> list[int]:
    """Play up to steps random legal actions; return them."""
    rng = np.random.default_rng(seed)
    actions = []
    for _ in range(steps):
        if game.game_over:
            break
        action = int(rng.choice(game.legal_actions()))
        game.step(action)
        actions.append(action)
    return actions


def test_piece_falls_to_the_floor_of_an_empty_board() -> None:
    game = TetrisGame(seed=0)
    game.set_board("." * 200, PIECE["O"])
    assert game.step(0 * 10 + 4) == 0
    assert bottom_rows(game, 3) == ["." * 10, "....OO....", "....OO...."]


def test_piece_rests_on_the_highest_full_cell_not_inside_an_overhang(
    game_with_board: GameWithBoard,
) -> None:
    game = game_with_board(["S.........", "..........", "S........."], "I")
    game.step(1 * 10 + 0)  # vertical I in column 0
    assert bottom_rows(game, 7) == ["I........."] * 4 + ["S.........", "..........", "S........."]


def test_piece_stops_where_its_first_column_touches(game_with_board: GameWithBoard) -> None:
    game = game_with_board([".O........", ".O........"], "T")
    game.step(2 * 10 + 0)  # T pointing down, its nub over the O column
    assert bottom_rows(game, 4) == ["TTT.......", ".T........", ".O........", ".O........"]


def test_only_distinct_rotations_inside_the_walls_are_legal() -> None:
    game = TetrisGame(seed=0)
    expected = {"I": 7 + 10, "O": 9, "T": 8 + 9 + 8 + 9, "S": 8 + 9, "Z": 8 + 9, "J": 34, "L": 34}
    for name, count in expected.items():
        game.set_board("." * 200, PIECE[name])
        mask = game.action_mask()
        assert mask.dtype == np.int8 and mask.shape == (40,)
        assert mask.sum() == count == len(game.legal_actions())
    game.set_board("." * 200, PIECE["O"])
    assert list(game.legal_actions()) == list(range(9))


def test_full_line_is_cleared_and_the_rows_above_fall(game_with_board: GameWithBoard) -> None:
    game = game_with_board(["J.........", "IIIIIIIII."], "I")
    assert game.step(1 * 10 + 9) == 1
    assert bottom_rows(game, 4) == ["." * 10, ".........I", ".........I", "J........I"]
    assert (game.lines, game.score, game.pieces) == (1, 40, 1)


@pytest.mark.parametrize(("lines", "score"), [(1, 40), (2, 100), (3, 300), (4, 1200)])
def test_score_follows_the_classic_table(
    game_with_board: GameWithBoard, lines: int, score: int
) -> None:
    game = game_with_board(["SSSSSSSSS."] * lines, "I")
    assert game.step(1 * 10 + 9) == lines
    assert (game.lines, game.score) == (lines, score)


def test_a_board_where_nothing_fits_is_game_over(game_with_board: GameWithBoard) -> None:
    game = game_with_board(STAGGERED, "O")
    assert game.game_over
    assert game.legal_actions().size == 0
    assert not game.action_mask().any()
    with pytest.raises(ValueError, match="game is over"):
        game.step(0)


def test_game_ends_when_the_next_piece_cannot_be_placed(game_with_board: GameWithBoard) -> None:
    seed = next(s for s in range(100) if TetrisGame(seed=s).next_piece == PIECE["O"])
    game = game_with_board(STAGGERED, "I", seed=seed)
    assert list(game.legal_actions()) == [0, 1, 2, 3, 4, 5, 6]  # flat I on the top row only
    assert game.step(0) == 0
    assert game.game_over and game.current_piece == PIECE["O"] and game.pieces == 1


def test_illegal_action_raises_and_leaves_the_game_unchanged() -> None:
    game = TetrisGame(seed=3)
    game.set_board("." * 200, PIECE["O"])
    before = pickle.dumps(game)
    for action in (-1, 9, 10, 40, 1000):
        with pytest.raises(ValueError, match="not legal"):
            game.step(action)
    assert pickle.dumps(game) == before


def test_same_seed_gives_the_same_game() -> None:
    games = [TetrisGame(seed=42) for _ in range(2)]
    played = [random_legal_play(g, 300, seed=1) for g in games]
    assert played[0] == played[1]
    assert games[0].board_string() == games[1].board_string()
    assert (games[0].lines, games[0].score, games[0].pieces) == (
        games[1].lines,
        games[1].score,
        games[1].pieces,
    )


def test_reset_with_a_seed_replays_the_game() -> None:
    game = TetrisGame(seed=5)
    first = random_legal_play(game, 100, seed=2)
    board = game.board_string()
    game.reset(5)
    assert (game.lines, game.pieces, game.board_string()) == (0, 0, "." * 200)
    assert random_legal_play(game, 100, seed=2) == first
    assert game.board_string() == board


@pytest.mark.parametrize("randomizer", ["uniform", "bag7"])
def test_pieces_follow_the_seeded_splitmix64_stream(randomizer: str) -> None:
    game = TetrisGame(randomizer=randomizer, seed=2024)
    dealt = [game.current_piece]
    while len(dealt) < 200:
        game.play_linear(BCTS_WEIGHTS, "bcts", 1)
        dealt.append(game.current_piece)
    assert dealt == ref.piece_sequence(2024, randomizer, 200)


def test_bag7_deals_every_piece_once_in_each_bag_of_seven() -> None:
    pieces = ref.piece_sequence(7, "bag7", 700)
    game = TetrisGame(randomizer="bag7", seed=7)
    assert [game.current_piece, game.next_piece] == pieces[:2]
    for start in range(0, 700, 7):
        assert sorted(pieces[start : start + 7]) == list(range(7))


def test_uniform_randomizer_deals_each_piece_about_equally_often() -> None:
    counts = Counter(ref.piece_sequence(11, "uniform", 70_000))
    assert set(counts) == set(range(7))
    assert all(abs(n - 10_000) < 500 for n in counts.values())


def test_game_pickles_and_continues_identically() -> None:
    game = TetrisGame(randomizer="bag7", seed=9)
    random_legal_play(game, 50, seed=3)
    copy = pickle.loads(pickle.dumps(game))
    assert copy.board_string() == game.board_string()
    assert random_legal_play(copy, 200, seed=4) == random_legal_play(game, 200, seed=4)
    assert (copy.board_string(), copy.lines, copy.score) == (
        game.board_string(),
        game.lines,
        game.score,
    )


def test_board_string_is_the_frame_format_with_each_cells_piece() -> None:
    game = TetrisGame(seed=0)
    game.set_board("." * 200, PIECE["I"])
    game.step(0)
    frame = game.board_string()
    assert len(frame) == 200 and set(frame) <= set("." + PIECE_NAMES)
    assert frame[-10:] == "IIII......" and frame[:190] == "." * 190
    assert game.board()[-1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]


def test_set_board_rejects_what_a_game_cannot_hold() -> None:
    game = TetrisGame(seed=0)
    for bad in ("." * 199, "X" + "." * 199, "." * 190 + "I" * 10):
        with pytest.raises(ValueError):
            game.set_board(bad, PIECE["I"])
    with pytest.raises(ValueError):
        game.set_board("." * 200, 7)


def test_unsupported_sizes_and_randomizers_are_rejected() -> None:
    for kwargs in ({"width": 3}, {"width": 62}, {"height": 3}, {"randomizer": "nes"}):
        with pytest.raises(ValueError):
            TetrisGame(**kwargs)


def test_weights_must_fit_the_feature_set_and_be_finite() -> None:
    game = TetrisGame(seed=0)
    for weights, feature_set in (
        (BCTS_WEIGHTS, "dellacherie"),
        (np.array([1.0, np.nan, 0.0, 0.0]), "classic"),
        (BCTS_WEIGHTS, "bcts8"),
    ):
        with pytest.raises(ValueError):
            game.play_linear(weights, feature_set, 1)
        with pytest.raises(ValueError):
            play_linear_games(weights, np.arange(2), feature_set=feature_set)
    assert game.pieces == 0


def greedy_action(game: TetrisGame, weights: np.ndarray, feature_set: str) -> int:
    """The first afterstate whose features @ weights is largest, summed as the kernel does."""
    after = game.afterstates(feature_set)
    best, best_value = -1, -np.inf
    for action, features in zip(after.actions, after.features.astype(np.float64), strict=True):
        value = 0.0
        for w, f in zip(weights, features, strict=True):
            value += w * f
        if value > best_value:
            best, best_value = int(action), value
    return best


@pytest.mark.parametrize(
    ("feature_set", "weights"),
    [
        ("bcts", BCTS_WEIGHTS),
        ("dellacherie", DELLACHERIE_WEIGHTS),
        ("classic", np.array([0.76, -0.36, -0.18, -0.51])),
        ("dt", np.array([*BCTS_WEIGHTS, 8.0])),
    ],
)
def test_play_linear_takes_the_best_afterstate(feature_set: str, weights: np.ndarray) -> None:
    kernel, by_hand = TetrisGame(seed=1), TetrisGame(seed=1)
    for _ in range(300):
        by_hand.step(greedy_action(by_hand, weights, feature_set))
        kernel.play_linear(weights, feature_set, 1)
        assert kernel.board_string() == by_hand.board_string()


def test_play_linear_in_chunks_equals_one_long_call() -> None:
    whole, chunked = TetrisGame(seed=3), TetrisGame(seed=3)
    lines = whole.play_linear(BCTS_WEIGHTS, "bcts", 700)
    assert sum(chunked.play_linear(BCTS_WEIGHTS, "bcts", 7) for _ in range(100)) == lines
    assert chunked.board_string() == whole.board_string()
    assert (chunked.pieces, chunked.lines, chunked.score) == (700, whole.lines, whole.score)


def test_play_linear_games_plays_the_same_games_as_tetris_game() -> None:
    seeds = np.array([0, 1, 2, -5, 2**40])
    lines, pieces = play_linear_games(
        DELLACHERIE_WEIGHTS, seeds, feature_set="dellacherie", piece_cap=500
    )
    assert lines.dtype == np.int64 and pieces.dtype == np.int64
    for seed, n_lines, n_pieces in zip(seeds, lines, pieces, strict=True):
        game = TetrisGame(seed=int(seed))
        assert game.play_linear(DELLACHERIE_WEIGHTS, "dellacherie", 500) == n_lines
        assert game.pieces == n_pieces == 500


def test_play_linear_games_plays_to_game_over_without_a_cap() -> None:
    lines, pieces = play_linear_games(
        np.array([0.0, 0.0, 0.0, 1.0]), np.arange(4), feature_set="classic", width=6, height=8
    )
    for seed, n_lines, n_pieces in zip(range(4), lines, pieces, strict=True):
        game = TetrisGame(6, 8, seed=seed)
        game.play_linear(np.array([0.0, 0.0, 0.0, 1.0]), "classic", 10_000)
        assert game.game_over and (game.lines, game.pieces) == (n_lines, n_pieces)


def test_published_controllers_clear_lines_at_the_maximum_rate() -> None:
    # 0.4 lines per piece is the most a 10-wide board allows; under MDPTetris rules both
    # controllers survive far longer than this cap.
    for weights, feature_set in ((DELLACHERIE_WEIGHTS, "dellacherie"), (BCTS_WEIGHTS, "bcts")):
        lines, pieces = play_linear_games(
            weights, np.arange(4), feature_set=feature_set, piece_cap=5_000
        )
        assert (pieces == 5_000).all()
        assert (lines >= 1_990).all()


def test_play_linear_recorded_returns_the_placements_play_linear_makes() -> None:
    played, recorded = TetrisGame(seed=9, height=10), TetrisGame(seed=9, height=10)
    played.play_linear(BCTS_WEIGHTS, "bcts", 400)
    actions = recorded.play_linear_recorded(BCTS_WEIGHTS, "bcts", 400)
    assert recorded.board_string() == played.board_string()
    stepped = TetrisGame(seed=9, height=10)
    for action in actions:
        stepped.step(int(action))
    assert stepped.board_string() == played.board_string()
    assert (stepped.pieces, stepped.lines, stepped.game_over) == (
        played.pieces,
        played.lines,
        played.game_over,
    )


def test_a_game_keeps_its_seed_even_when_the_os_drew_it() -> None:
    drawn = TetrisGame()
    again = TetrisGame(seed=drawn.seed)
    while not drawn.game_over:
        action = int(drawn.legal_actions()[-1])
        drawn.step(action)
        again.step(action)
    assert again.board_string() == drawn.board_string() and again.game_over
    assert TetrisGame(seed=-1).seed == 2**64 - 1
