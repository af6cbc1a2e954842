"""An experiment in a real browser, on real workers: created from the form, its curves
growing live over the socket as the scheduler (the workers' sweep) stores new figures,
until each configuration shows its final IQM with its interval."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import save_screenshot, sign_in
from tetris_site import stack
from trainer.models import Experiment
from trainer.rl.confidence import iqm_text

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"  # the `user` fixture's
WAIT_MS = 90_000
# Runs of about a second each: cem on a short board, a few thousand pieces, no live board
# and no periodic evaluation; then a small final evaluation of each.
SETTINGS = """algorithm=cem
cem_population=20
cem_train_height=10
max_pieces=3000
frames_per_second=0
threads=1
eval_every_pieces=0
"""
# A run that played every final game to the cap has a lower bound for a score: "≥ ...".
FINAL_SCORE = re.compile(
    r"^(≥ )?[\d,.]+ \(95% CI [\d,.]+\N{EN DASH}[\d,.]+, 3 runs(; [123] at the piece cap)?\)$"
)


def test_an_experiments_curves_grow_live_until_each_configuration_has_its_final_score(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    idle_after_test: stack.Service,
    evaluate_worker: stack.Service,
    user: object,
    tmp_path: Path,
) -> None:
    page, base = browser_page, live_daphne.url
    sign_in(page, base, "ada", PASSWORD)
    page.click(".topbar >> text=Experiments")
    page.click("#new-experiment")
    page.fill("#id_name", "noise of the search")
    page.fill("#id_settings", SETTINGS)
    page.fill("#id_grid", "cem_noise = 1, 4")
    page.fill("#id_seeds", "3")
    page.fill("#id_parallel", "3")
    page.fill("#id_eval_games", "4")
    page.fill("#id_eval_piece_cap", "2000")
    page.click("#experiment-form button[type=submit]")
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.evaluate("window.notReloaded = true")  # gone if the page ever reloads

    # The bands grow as runs end: first one configuration's seeds, later the other's.
    page.wait_for_function(
        "TetrisTrainer.experiment.pointsDrawn() > 0", timeout=WAIT_MS, polling=200
    )
    first = page.evaluate("TetrisTrainer.experiment.pointsDrawn()")
    page.wait_for_function(
        f"TetrisTrainer.experiment.pointsDrawn() > {first}", timeout=WAIT_MS, polling=200
    )
    assert int(page.locator("#stat-points").inner_text().replace(",", "")) > first

    # Each configuration's final IQM with its interval, once its three runs are evaluated.
    page.wait_for_function(
        "TetrisTrainer.experiment.figures().status === 'finished'", timeout=WAIT_MS, polling=200
    )
    scores = page.locator("#configuration-list .final-score")
    expect(scores).to_have_count(2)
    for text in scores.all_inner_texts():
        assert FINAL_SCORE.match(text), text
    expect(page.locator("#ranking tbody tr")).to_have_count(2)
    expect(page.locator("#improvement tbody tr")).to_have_count(2)
    expect(page.locator("#parallel polyline.configuration")).to_have_count(2)
    expect(page.locator("#experiment-status")).to_have_text("finished")
    expect(page.locator("#stop-form")).to_be_hidden()

    # The page writes each score as the server does, and got it all over the socket.
    summary = Experiment.objects.get().summary
    for configuration, text in zip(
        summary["configurations"], scores.all_inner_texts(), strict=True
    ):
        figures = (configuration[key] for key in ("iqm", "ci95_low", "ci95_high", "evaluated"))
        assert text == iqm_text(*figures, censored=configuration["censored"])
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("TetrisTrainer.experiment.updates()") >= 2
    save_screenshot(page, "experiment.png", tmp_path)
    assert script_errors == []
