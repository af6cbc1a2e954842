"""static/js/tetris_rules.js weighs placements exactly as the Python engine and policies do.

Positions come from games the Python engine plays (random, greedy and mixed play on several
board sizes) and a few drawn boards; for each, node computes the afterstate features of
every placement, a linear policy's options and the landing cells, and each must equal the
engine's `afterstates`, `trainer.rl.options.linear_options` and `reference.place`.
"""

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from trainer.rl.options import linear_options
from trainer.tetris import BCTS_WEIGHTS, DELLACHERIE_WEIGHTS, FEATURE_SETS, PIECE_NAMES, TetrisGame
from trainer.tetris import reference as ref

NODE = shutil.which("node")
HARNESS = Path(__file__).with_name("tetris_options.js")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs node (v20) on PATH")

# (width, height, randomizer, seed, plan, pieces at most, keep every n-th position)
GAMES = [
    (10, 20, "uniform", 0, "dellacherie", 300, 2),
    (10, 20, "bag7", 1, "bcts", 300, 2),
    (10, 20, "uniform", 2, "mixed", 400, 3),
    (10, 20, "bag7", 3, "random", 400, 1),
    (10, 20, "uniform", 4, "random", 400, 1),
    (6, 8, "uniform", 5, "random", 400, 1),
    (6, 8, "bag7", 6, "mixed", 300, 1),
    (6, 8, "uniform", 7, "dellacherie", 120, 1),
    (13, 12, "uniform", 8, "bcts", 200, 2),
    (13, 12, "bag7", 9, "mixed", 300, 1),
    (4, 6, "bag7", 10, "random", 400, 1),
    (4, 6, "uniform", 11, "mixed", 400, 1),
]

# Drawn boards (bottom rows last), tried with every piece: a tetris ready for an I, the
# worked example of MDPTetris's cumulative wells (20) and deep covered holes.
DRAWN = [
    (10, 20, ["S........."] * 2 + ["SSSSSSSSS."] * 4),
    (
        8,
        10,
        [
            "...X....",
            "...XX...",
            ".X.XX...",
            ".XXXXX.X",
            ".XXXXX.X",
            "XXXXX..X",
            "...XXX.X",
            "X.X..X.X",
        ],
    ),
    (6, 8, ["ZZZZ..", "Z....Z", "ZZ.ZZZ", "Z.ZZZ.", ".ZZZZZ"]),
]


def played_positions(spec: tuple) -> list[tuple[int, int, str, int]]:
    """(width, height, frame, current piece) of a game's positions, its last one always."""
    width, height, randomizer, seed, plan, most, every = spec
    game = TetrisGame(width, height, randomizer, seed)
    rng = np.random.default_rng(seed)
    found = [(width, height, game.board_string(), game.current_piece)]
    while not game.game_over and game.pieces < most:
        if plan == "random" or (plan == "mixed" and rng.random() < 0.3):
            game.step(int(rng.choice(game.legal_actions())))
        elif plan == "bcts":
            game.play_linear(BCTS_WEIGHTS, "bcts", 1)
        else:
            game.play_linear(DELLACHERIE_WEIGHTS, "dellacherie", 1)
        found.append((width, height, game.board_string(), game.current_piece))
    return found[::every] + ([found[-1]] if (len(found) - 1) % every else [])


def drawn_positions() -> list[tuple[int, int, str, int]]:
    positions = []
    for width, height, rows in DRAWN:
        frame = "." * (width * (height - len(rows))) + "".join(rows).replace("X", "T")
        positions += [(width, height, frame, piece) for piece in range(len(PIECE_NAMES))]
    return positions


def weight_vectors(feature_set: str, rng: np.random.Generator) -> list[list[float]]:
    """Published weights, random ones, small integers (many exact ties) and all zeros."""
    n = len(FEATURE_SETS[feature_set])
    published = {
        "classic": [[0.760666, -0.35663, -0.184483, -0.510066]],  # Yiyuan Lee's weights
        "dellacherie": [DELLACHERIE_WEIGHTS.tolist()],
        "bcts": [BCTS_WEIGHTS.tolist()],
        "dt": [[*BCTS_WEIGHTS.tolist(), 5.0]],  # BCTS's, and a weight on pattern diversity
    }[feature_set]
    drawn = [rng.normal(0, 10, n).tolist(), rng.integers(-3, 4, n).astype(float).tolist()]
    return [*published, *drawn, [0.0] * n]


def weigh_in_node(cases: list[dict]) -> dict:
    completed = subprocess.run(
        [NODE, str(HARNESS)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def python_game(width: int, height: int, frame: str, piece: int) -> TetrisGame:
    game = TetrisGame(width, height, seed=0)
    game.set_board(frame, piece)
    return game


def expected_landing(width: int, height: int, frame: str, piece: int) -> list:
    """reference.place()'s cells for every action id, top row 0; None where illegal."""
    board = ref.board_from_frame(frame, width)  # the reference counts rows from the bottom
    landing = []
    for action in range(4 * width):
        rotation, column = divmod(action, width)
        placement = ref.place(board, piece, rotation, column)
        if placement is None:
            landing.append(None)
            continue
        cells = ref.piece_cells(piece, rotation)
        landing.append(
            sorted([height - 1 - (placement.landing_row + r), column + c] for r, c in cells)
        )
    return landing


def option_key(option: dict) -> tuple[int, int]:
    return option["rotation"], option["column"]


def assert_same_options(options: list[dict], expected: list[dict], where: str) -> None:
    """JS options equal linear_options' exactly: the same list, best first, ties in action
    order, the same one chosen, every term and value to the bit (both add the terms up one
    by one in feature order, as the engine's greedy play does)."""
    assert options == expected, where
    values = [option["value"] for option in options]
    assert values == sorted(values, reverse=True), where
    for a, b in itertools.pairwise(options):
        assert a["value"] > b["value"] or option_key(a) < option_key(b), where
    assert [option["chosen"] for option in options] == [i == 0 for i in range(len(options))]


def test_features_options_and_landing_cells_equal_the_engines() -> None:
    rng = np.random.default_rng(2024)
    positions = [p for spec in GAMES for p in played_positions(spec)] + drawn_positions()
    cases = [
        {
            "width": width,
            "height": height,
            "board": frame,
            "piece": PIECE_NAMES[piece],
            "featureSet": feature_set,
            "weights": weight_vectors(feature_set, rng),
            "landing": feature_set == "classic",  # once per position
        }
        for width, height, frame, piece in positions
        for feature_set in FEATURE_SETS
    ]
    answer = weigh_in_node(cases)
    assert answer["featureSets"] == {name: list(names) for name, names in FEATURE_SETS.items()}

    seen = dict.fromkeys(["game over", "holes", "wells", "line clears", "tetris"], 0)
    seen |= {"positions": len(positions), "options": 0}
    for case, js in zip(cases, answer["results"], strict=True):
        width, height, fs = case["width"], case["height"], case["featureSet"]
        piece = PIECE_NAMES.index(case["piece"])
        game = python_game(width, height, case["board"], piece)
        context = f"{fs}, piece {case['piece']}, {width}x{height} board {case['board']}"
        assert js["error"] is None, context
        assert js["gameOver"] == game.game_over, context

        # Features: every placement, in action order, value by value.
        after = game.afterstates(fs, with_boards=True)
        names = FEATURE_SETS[fs]
        placements = js["placements"]
        assert [p["action"] for p in placements] == after.actions.tolist(), context
        assert [[p["rotation"], p["column"]] for p in placements] == [
            list(divmod(a, width)) for a in after.actions.tolist()
        ], context
        assert [p["lines"] for p in placements] == after.lines.tolist(), context
        features = np.array([[p["features"][n] for n in names] for p in placements], np.float32)
        assert np.array_equal(features.reshape(-1, len(names)), after.features), context

        # Options: the same list, best first, the same one chosen.
        for weights, options in zip(case["weights"], js["options"], strict=True):
            expected = linear_options(game, np.array(weights), fs)
            where = f"{context}, weights {weights}"
            assert_same_options(options, expected, where)
            # And the choice is the engine's own greedy play's, which adds up as JS does.
            if options:
                greedy = python_game(width, height, case["board"], piece)
                played = greedy.play_linear_recorded(np.array(weights), fs, 1).tolist()
                assert played == [options[0]["rotation"] * width + options[0]["column"]], where
            seen["options"] += 1
        if case["landing"]:
            landing = expected_landing(width, height, case["board"], piece)
            assert js["landing"] == landing, context
            # And on the engine's own afterstate boards, where no line was cleared.
            before = np.array([ch != "." for ch in case["board"]], np.uint8)
            for action, lines, board in zip(after.actions, after.lines, after.boards, strict=True):
                if lines == 0:
                    drawn = before.reshape(height, width).copy()
                    for row, column in landing[action]:
                        drawn[row, column] = 1
                    assert np.array_equal(drawn, board), (context, int(action))

        if fs == "bcts":
            board = game.features("bcts")
            seen["game over"] += game.game_over
            seen["holes"] += bool(board[4] > 0)
            seen["wells"] += bool(board[5] > 0)
            seen["line clears"] += bool(len(after.lines) and after.lines.max() > 0)
            seen["tetris"] += bool(len(after.lines) and after.lines.max() == 4)
    # The positions reach what the features are about.
    assert seen["positions"] > 400 and seen["holes"] > 100 and seen["line clears"] > 100, seen
    assert min(seen.values()) > 0, seen


def test_port_refuses_what_the_engine_refuses() -> None:
    width, height = 6, 8
    empty = "." * (width * height)
    full_row = "." * (width * (height - 1)) + "T" * width
    base = {"width": width, "height": height, "piece": "T", "featureSet": "bcts"}
    cases = [
        {**base, "board": empty[:-1], "weights": []},  # not width * height chars
        {**base, "board": empty[:-1] + "x", "weights": []},  # not a piece letter
        {**base, "board": full_row, "weights": []},  # a row the engine would have cleared
        {**base, "board": empty, "piece": "Q", "weights": []},
        {**base, "board": empty, "featureSet": "tetris", "weights": []},
        {**base, "board": empty, "weights": [[1.0, 2.0]]},  # bcts has 8 features
    ]
    for frame in (empty[:-1], empty[:-1] + "x", full_row):
        with pytest.raises(ValueError):
            python_game(width, height, frame, 2)
    with pytest.raises(ValueError):
        python_game(width, height, empty, 2).afterstates("tetris")
    with pytest.raises(ValueError):
        linear_options(python_game(width, height, empty, 2), np.array([1.0, 2.0]), "bcts")
    results = weigh_in_node(cases)["results"]
    assert all(result["error"] for result in results), results
