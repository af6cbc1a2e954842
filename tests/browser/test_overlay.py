"""The overlay, "watch the agent think", in a real browser against the real stack: the
toggle reaches the play worker, and the options it draws are the engine's, value by value,
worked out in Python and in the page's own port of the rules."""

from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import save_screenshot, sign_in
from tests.trained_runs import finished_cem_run
from tests.trainer.test_player import side_by_side
from tetris_site import stack
from trainer.models import BestGame
from trainer.rl.options import linear_options
from trainer.tetris import BCTS_WEIGHTS, PIECE_NAMES, TetrisGame

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"  # the `user` fixture's
WAIT_MS = 60_000

# The options of the board the page shows, worked out by tetris_rules.js in the page.
OPTIONS_IN_THE_PAGE = """([width, height, board, piece, weights, featureSet]) => {
  const rules = TetrisTrainer.TetrisRules;
  const game = rules.Game.fromBoard(width, height, board, piece);
  return rules.placementOptions(game, weights, featureSet);
}"""


def engine_options(width: int, height: int, board: str, piece: str, weights, feature_set: str):
    """What trainer.rl.options works out for that board and piece."""
    game = TetrisGame(width, height, "uniform", seed=0)
    game.set_board(board, PIECE_NAMES.index(piece))
    return linear_options(game, np.asarray(weights, float), feature_set)


def shown(page: Page, hook: str) -> dict:
    return page.evaluate(f"TetrisTrainer.{hook}.overlay()")


def test_a_plays_options_reach_the_page_from_the_worker_as_the_engine_weighs_them(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    idle_after_test: stack.Service,
    user: object,
    tmp_path: Path,
) -> None:
    page, base = browser_page, live_daphne.url
    sign_in(page, base, "ada", PASSWORD)
    page.goto(f"{base}/play/bcts/")
    expect(page.locator("#play-state")).to_have_text("playing", timeout=WAIT_MS)
    page.click("#pause-button")
    expect(page.locator("#play-state")).to_have_text("paused")
    expect(page.locator("#overlay-panel")).to_be_hidden()
    assert shown(page, "player")["options"] is None

    # The toggle reaches the worker, which sends the paused board again with its options.
    page.check("#overlay-toggle")
    page.wait_for_function("TetrisTrainer.player.overlay().options !== null", timeout=WAIT_MS)
    for step in range(3):
        overlay = shown(page, "player")
        board = page.evaluate("TetrisTrainer.player.board()")
        expected = engine_options(10, 20, board, overlay["piece"], BCTS_WEIGHTS, "bcts")
        assert overlay["options"] == expected, f"step {step}"
        in_page = page.evaluate(
            OPTIONS_IN_THE_PAGE, [10, 20, board, overlay["piece"], list(BCTS_WEIGHTS), "bcts"]
        )
        assert in_page == expected, f"step {step}"
        rows = page.evaluate("TetrisTrainer.player.overlayRows()")
        assert rows == [
            {k: option[k] for k in ("rotation", "column", "value")} for option in expected[:5]
        ]
        expect(page.locator("#overlay-table tbody.chosen")).to_have_count(1)
        if step == 0:
            save_screenshot(page, "overlay-play.png", tmp_path)
        placed = overlay["pieces"]
        page.click("#step-button")
        page.wait_for_function(
            "n => TetrisTrainer.player.overlay().pieces === n + 1"
            " && TetrisTrainer.player.overlay().options !== null",
            arg=placed,
            timeout=WAIT_MS,
        )

    # Off again: the panel goes, and so do the options.
    page.uncheck("#overlay-toggle")
    expect(page.locator("#overlay-panel")).to_be_hidden()
    assert shown(page, "player")["options"] is None
    assert script_errors == []


def test_a_replay_steps_through_the_options_of_the_policy_that_played_it(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    user: object,
    tmp_path: Path,
) -> None:
    page, base = browser_page, live_daphne.url
    run = finished_cem_run(user, name="cem, replayed with its options")
    record = BestGame.objects.get(run=run, kind="train")
    policy = record.policy
    assert policy["kind"] == "linear"
    sign_in(page, base, "ada", PASSWORD)

    # The learner's own view: cem's mean weight of each feature, with its spread.
    page.goto(f"{base}/runs/{run.pk}/")
    expect(page.locator('.chart[data-metric="cem/weight"] canvas')).to_be_visible()
    # How many worker processes played each generation (here: the run's own, 1).
    expect(page.locator('.chart[data-metric="cem/workers"] figcaption')).to_have_text(
        "Worker processes per generation"
    )
    episodes, means, high, low = page.evaluate(
        "TetrisTrainer.viewer.chartSeries('cem/weight/holes')"
    )
    assert len(episodes) == len(means) > 0
    assert all(lo <= mean <= hi for mean, hi, lo in zip(means, high, low, strict=True))
    save_screenshot(page, "weights-chart.png", tmp_path)

    page.goto(f"{base}/runs/{run.pk}/replay/train/")
    expect(page.locator("#play-state")).to_have_text("paused")
    page.check("#overlay-toggle")

    game = TetrisGame(record.width, record.height, record.randomizer, record.seed)
    for placement, action in enumerate(bytes(record.actions)[:4]):
        page.wait_for_function(
            "n => TetrisTrainer.player.overlay().pieces === n", arg=placement, timeout=10_000
        )
        expected = linear_options(game, np.asarray(policy["weights"]), policy["feature_set"])
        assert shown(page, "player")["options"] == expected, f"placement {placement}"
        (chosen,) = [option for option in expected if option["chosen"]]
        assert chosen["rotation"] * record.width + chosen["column"] == action
        page.click("#step-button")
        game.step(action)
    assert script_errors == []


def test_two_policies_side_by_side_pause_where_they_first_disagree(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    idle_after_test: stack.Service,
    user: object,
    tmp_path: Path,
) -> None:
    page, base = browser_page, live_daphne.url
    sign_in(page, base, "ada", PASSWORD)
    page.goto(f"{base}/play/bcts/")
    page.select_option("#versus-a", "controller:dellacherie")
    page.select_option("#versus-b", "controller:bcts")
    page.click("#versus-form button[type=submit]")
    page.wait_for_url("**/play/versus/?a=controller%3Adellacherie&b=controller%3Abcts")
    page.fill("#speed", "60")
    page.wait_for_function("TetrisTrainer.player.disagreement() !== null", timeout=WAIT_MS)
    expect(page.locator("#play-state")).to_have_text("paused")

    # The same disagreement as the two policies' own, on the page's seed.
    seed = int(page.text_content("#stat-seed").replace(",", ""))
    duel = side_by_side(seed)
    while duel.advance():
        pass
    disagreement = page.evaluate("TetrisTrainer.player.disagreement()")
    assert disagreement == duel.disagreement
    expect(page.locator("#disagreement")).to_contain_text(f"placement {disagreement['placement']}")
    board = page.evaluate("TetrisTrainer.player.board()")
    assert board == page.evaluate("TetrisTrainer.player.rival().board")
    assert board == duel.first.game.board_string()

    # Each board its own options, each the engine's.
    page.check("#overlay-toggle")
    page.wait_for_function(
        "TetrisTrainer.player.overlay().options !== null"
        " && TetrisTrainer.player.rivalOverlay().options !== null",
        timeout=WAIT_MS,
    )
    piece = disagreement["piece"]
    for hook, weights, feature_set in [
        ("overlay", duel.first.policy.weights, "dellacherie"),
        ("rivalOverlay", BCTS_WEIGHTS, "bcts"),
    ]:
        options = page.evaluate(f"TetrisTrainer.player.{hook}().options")
        assert options == engine_options(10, 20, board, piece, weights, feature_set), hook
    save_screenshot(page, "versus.png", tmp_path)

    # Step places the piece each its own way.
    page.click("#step-button")
    page.wait_for_function(
        "n => TetrisTrainer.player.pieces() === n", arg=disagreement["placement"]
    )
    page.wait_for_timeout(300)
    assert page.evaluate("TetrisTrainer.player.board()") != page.evaluate(
        "TetrisTrainer.player.rival().board"
    )
    assert script_errors == []
