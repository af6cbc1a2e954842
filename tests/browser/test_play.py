"""Watching a checkpoint play and replaying a best game, in a real browser against the real
stack: daphne, Redis, a Celery worker playing the game, and chromium."""

import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from tests.browser.pages import save_screenshot, sign_in
from tests.trained_runs import finished_cem_run
from tetris_site import stack
from trainer import selectors
from trainer.models import BestGame
from trainer.tetris import TetrisGame

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"  # the `user` fixture's
WAIT_MS = 60_000


def pieces(page: Page) -> int:
    """Pieces placed in the game the page shows."""
    return page.evaluate("TetrisTrainer.player.pieces()")


def pieces_per_second(page: Page, seconds: float = 1.5) -> float:
    """How fast the page's game goes, measured over `seconds`."""
    before = pieces(page)
    page.wait_for_timeout(seconds * 1000)
    return (pieces(page) - before) / seconds


def test_checkpoint_is_watched_faster_paused_and_stepped(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    idle_after_test: stack.Service,
    user: object,
    tmp_path: Path,
) -> None:
    page, base = browser_page, live_daphne.url
    run = finished_cem_run(user, name="cem, watched")
    checkpoint = selectors.latest_checkpoint(run)
    sign_in(page, base, "ada", PASSWORD)

    page.goto(f"{base}/runs/{run.pk}/")
    page.click(f"#checkpoint-list >> text=episode {checkpoint.episode}")
    page.wait_for_url(re.compile(rf"/runs/{run.pk}/play/\?checkpoint={checkpoint.pk}$"))
    expect(page.locator("h1")).to_have_text(f"Checkpoint at episode {checkpoint.episode}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#play-state")).to_have_text("playing", timeout=WAIT_MS)
    page.wait_for_function("TetrisTrainer.player.pieces() >= 3", timeout=WAIT_MS)
    assert pieces_per_second(page) <= 14  # the default, 10 a second

    page.fill("#speed", "60")
    expect(page.locator("#speed-value")).to_have_text("60")
    page.wait_for_timeout(300)
    assert pieces_per_second(page) >= 30

    page.click("#pause-button")
    expect(page.locator("#play-state")).to_have_text("paused")
    expect(page.locator("#pause-button")).to_have_text("Play")
    page.wait_for_timeout(300)  # frames already on their way
    held = pieces(page)
    page.wait_for_timeout(1000)
    assert pieces(page) == held

    page.click("#step-button")
    page.wait_for_function("n => TetrisTrainer.player.pieces() === n + 1", arg=held)
    page.wait_for_timeout(500)
    assert pieces(page) == held + 1 and page.evaluate("TetrisTrainer.player.paused()")

    page.fill("#speed", "8")
    page.click("#pause-button")
    expect(page.locator("#play-state")).to_have_text("playing")
    page.wait_for_function("n => TetrisTrainer.player.pieces() > n + 5", arg=held + 1)
    save_screenshot(page, "play.png", tmp_path)
    assert script_errors == []


def test_best_evaluation_game_is_replayed_in_the_page_to_the_recorded_board(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    user: object,
    tmp_path: Path,
) -> None:
    page, base = browser_page, live_daphne.url
    run = finished_cem_run(user, name="cem, replayed")
    call_command(
        "evaluate", str(run.pk), "--games", "2", "--piece-cap", "120", stdout=io.StringIO()
    )
    record = BestGame.objects.get(run=run, kind="eval")
    game = TetrisGame(record.width, record.height, record.randomizer, record.seed)
    for action in bytes(record.actions):
        game.step(action)
    sign_in(page, base, "ada", PASSWORD)

    page.goto(f"{base}/runs/{run.pk}/")
    page.click("#best-games >> text=best evaluation game")
    page.wait_for_url(f"{base}/runs/{run.pk}/replay/eval/")
    expect(page.locator("h1")).to_have_text(f"Best evaluation game: {record.lines} lines")
    expect(page.locator("#play-state")).to_have_text("paused")
    expect(page.locator("#play-detail")).to_have_text(f"placement 0 of {record.pieces}")

    page.click("#step-button")
    page.click("#step-button")
    expect(page.locator("#stat-pieces")).to_have_text("2")
    page.fill("#speed", "60")
    page.click("#pause-button")  # Play
    expect(page.locator("#play-state")).to_have_text("finished", timeout=30_000)
    expect(page.locator("#play-detail")).to_have_text(
        f"replayed the whole game: {record.lines} lines"
    )
    assert page.evaluate("TetrisTrainer.player.board()") == game.board_string()
    assert page.evaluate("TetrisTrainer.player.pieces()") == record.pieces

    # Restart goes back to the first placement and, still playing, replays the same game.
    page.click("#restart-button")
    page.wait_for_function(f"TetrisTrainer.player.pieces() < {record.pieces}")
    page.wait_for_function(f"TetrisTrainer.player.pieces() === {record.pieces}", timeout=30_000)
    expect(page.locator("#play-state")).to_have_text("finished")
    assert page.evaluate("TetrisTrainer.player.board()") == game.board_string()
    assert script_errors == []
