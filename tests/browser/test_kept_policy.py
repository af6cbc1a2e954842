"""The kept policy scored on held-out games, in a real browser: a quick run trained to its
piece budget keeps its best-evaluated checkpoint, and its owner's Evaluate button has the
`evaluate` workers play that policy on the evaluation seeds, the score shown under the chart.
Only the owner has the button, and it says in words why an evaluation cannot start.

Training is deterministic given the seed and a piece budget, so the run is the same every
time: seed 1 of the quick preset, 12,000 placements, evaluated every 3,000. That the
kept policy survives a collapse of the learner is a learning result, measured over seeds
by bench/dqn_stability.py; tests/trainer/rl/test_periodic_evaluation.py holds the rule
that a worse policy never replaces the kept one.
"""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.pages import save_screenshot, sign_in, start_run_in_form
from tetris_site import stack
from trainer import services
from trainer.exporting import evaluation_summary
from trainer.models import Checkpoint, Evaluation, Run
from trainer.rl.confidence import score_text

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"  # the `user` fixture's
OTHER_PASSWORD = "pw-for-tests-2"  # `other_user`'s
# The quick preset with its default seed (1) and frame rate, trained to a piece budget.
BUDGET = {
    "max_pieces": "12000",
    "max_minutes": "0",
    "threads": "2",
    "eval_every_pieces": "3000",
    # A short cap for the periodic and the held-out games alike: a good policy outlives
    # any cap, and a longer one only makes each evaluation longer.
    "eval_piece_cap": "2000",
}
TRAINING_S = 6 * 60
EVALUATING_MS = 5 * 60_000
HELD_OUT_GAMES, HELD_OUT_CAP = 20, 2_000
EVALUATIONS_API = re.compile(r"/api/runs/\d+/evaluations$")
# A score's headline number: its mean, or its 95% lower bound when no game ended.
HEADLINE = re.compile(r"^(≥ )?([\d,]+(?:\.\d)?) \(95% ")


def headline(score: str) -> float:
    """The number a score leads with: the mean, or the lower bound where nothing bounds it
    from above (the mean of games all cut short by the cap lies below that bound)."""
    found = HEADLINE.match(score)
    assert found, f"not a score: {score!r}"
    return float(found.group(2).replace(",", ""))


def first_held(page: Page, held: list[Route]) -> Route:
    """The first request a route handler holds, once Playwright has handed it over."""
    for _ in range(100):
        if held:
            return held[0]
        page.wait_for_timeout(100)  # Playwright's events are handled while the test waits
    raise AssertionError("the request never came")


@pytest.mark.timeout(TRAINING_S + 6 * 60)
def test_kept_policy_scores_on_held_out_games_at_least_half_its_periodic_evaluation(
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

    run_id = start_run_in_form(page, base, "kept policy, held out", BUDGET)
    deadline = time.monotonic() + TRAINING_S
    assert Run.objects.get(pk=run_id).seed == 1  # the form's default seed
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.evaluate("window.notReloaded = true")  # gone if the page ever reloads

    # The periodic evaluations are drawn as the run trains, and it trains to its budget.
    page.wait_for_function(
        "TetrisTrainer.viewer.evaluationMarks().length >= 2"
        " && TetrisTrainer.viewer.status() === 'running'",
        timeout=(deadline - time.monotonic()) * 1000,
        polling=1000,
    )
    left_ms = max(1.0, deadline - time.monotonic()) * 1000
    expect(page.locator("#run-status")).to_have_text("finished", timeout=left_ms)
    run = Run.objects.get(pk=run_id)
    periodic = Evaluation.objects.filter(run=run, kind=Evaluation.Kind.PERIODIC).count()
    page.wait_for_function("n => TetrisTrainer.viewer.evaluationMarks().length === n", arg=periodic)
    expect(page.locator("#stat-kept")).to_have_text(score_text(run.best_evaluation))

    # The kept checkpoint is listed first, as the one worth watching.
    first = page.locator("#checkpoint-list li").first
    expect(first).to_have_attribute("data-kind", "best")
    expect(first.locator(".tag.best")).to_have_text("best evaluated")
    kept = Checkpoint.objects.get(run=run, kind=Checkpoint.Kind.BEST)
    assert kept.total_pieces == run.best_evaluation["total_pieces"]

    # Its owner asks for it to be scored on held-out games; the button waits for the answer.
    page.fill("#evaluate-games", str(HELD_OUT_GAMES))
    page.fill("#evaluate-piece-cap", str(HELD_OUT_CAP))
    button = page.locator("#evaluate-button")
    held: list[Route] = []
    # Held, to see the button wait for the answer (a handler, not a builtin, for Playwright).
    page.route(EVALUATIONS_API, lambda route: held.append(route))
    button.click()
    request = first_held(page, held)
    expect(button).to_be_disabled()
    request.continue_()
    page.unroute(EVALUATIONS_API)
    expect(button).to_be_enabled()
    expect(button).to_have_text("Evaluate")
    assert len(held) == 1
    expect(page.locator("#evaluations-progress")).to_contain_text(f"of {HELD_OUT_GAMES} games")

    held_out = page.locator("#held-out")
    expect(held_out).to_be_visible(timeout=EVALUATING_MS)
    expect(page.locator("#evaluations-progress")).to_have_text("")

    # Held out, the kept policy plays at least half as well as its periodic evaluation said.
    # Each score counts by the number it leads with, as drawn on the chart: its mean, or,
    # where no game ended before the cap, its 95% lower bound (the games' own mean, all
    # cut short, lies below that bound: it says only how far the cap let them go).
    best_periodic = headline(page.locator("#stat-kept").text_content())
    on_held_out = headline(page.locator("#held-out-score").text_content())
    kept_text = page.locator("#stat-kept").text_content()
    print(f"\nbest periodic: {kept_text}\n{held_out.text_content()}")
    assert on_held_out >= best_periodic / 2

    # What the page shows is the stored evaluation of the kept checkpoint, as asked for.
    requested = Evaluation.objects.get(run=run, kind=Evaluation.Kind.REQUESTED)
    assert requested.status == Evaluation.Status.DONE
    assert (requested.checkpoint_id, requested.games, requested.piece_cap) == (
        kept.pk,
        HELD_OUT_GAMES,
        HELD_OUT_CAP,
    )
    expect(held_out).to_have_text(
        f"Kept policy on held-out games: {score_text(evaluation_summary(requested))}"
    )

    # A hollow point joins the chart, where the kept policy was taken; pointing at it reads
    # both scores of that policy.
    marks = page.evaluate("TetrisTrainer.viewer.evaluationMarks()")
    (hollow,) = [mark for mark in marks if mark["kind"] == "requested"]
    (ringed,) = [mark for mark in marks if mark["kept"]]
    assert hollow["x"] == ringed["x"]
    canvas = page.locator("#evaluations-chart canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    ratio = page.evaluate("window.devicePixelRatio")
    page.mouse.move(box["x"] + hollow["x"] / ratio, box["y"] + hollow["y"] / ratio)
    readout = page.locator("#evaluations-chart .chart-readout span")
    expect(readout).to_have_count(2)
    expect(readout.nth(0)).to_contain_text(f"{kept_text} · the kept policy")
    expect(readout.nth(1)).to_contain_text(
        f"{score_text(evaluation_summary(requested))} · requested, on the evaluation seeds"
    )

    save_screenshot(page, "viewer.png", tmp_path)
    assert page.evaluate("window.notReloaded") is True
    assert script_errors == []


def test_evaluate_is_the_owners_and_says_in_words_why_it_cannot_start(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    user: object,
    other_user: object,
) -> None:
    page, base = browser_page, live_daphne.url
    run = services.run_create(owner=user, name="not trained", visibility=Run.Visibility.PUBLIC)
    sign_in(page, base, "ada", PASSWORD)
    page.goto(f"{base}/runs/{run.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    page.fill("#evaluate-games", "0")
    page.click("#evaluate-button")
    expect(page.locator("#notice")).to_have_text(
        "Could not start the evaluation: games: must be an integer from 1 to 10,000, got 0; "
        f"checkpoint: run {run.pk} has no checkpoint yet"
    )
    expect(page.locator("#evaluate-button")).to_be_enabled()
    expect(page.locator("#evaluations-progress")).to_have_text("")

    # Someone else watching the public run has no Evaluate button: it spends the owner's workers.
    page.context.clear_cookies()
    sign_in(page, base, "bob", OTHER_PASSWORD)
    page.goto(f"{base}/runs/{run.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#evaluate-form")).to_be_hidden()
    assert script_errors == []
