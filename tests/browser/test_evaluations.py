"""Evaluations in a real browser: drawn live on the viewer as a training run evaluates its
policy, with the best-evaluated checkpoint joining the list; stored ones drawn on the viewer
and the compare page, each a point with its 95% interval."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import save_screenshot, sign_in, start_run_in_form
from tests.visualizer.test_pages import add_evaluation, keep_as_best
from tetris_site import stack
from trainer import services
from trainer.exporting import evaluation_summary
from trainer.models import Checkpoint, Evaluation, Run
from trainer.rl.confidence import score_text

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"  # the `user` fixture's
WAIT_MS = 120_000
# A short quick run that evaluates often, in small evaluations.
EVALUATED_OFTEN = {"eval_every_pieces": "2000", "eval_games": "4", "eval_piece_cap": "500"}
KEPT_SCORE = re.compile(
    "^([\\d,.]+ \\(95% CI [\\d,.]+\N{EN DASH}[\\d,.]+, 4 games\\)"
    r"|≥ [\d,.]+ \(95% lower bound; no game ended before the cap of 500 pieces\), 4 games)$"
)


def evaluation_marks(page: Page, source: str = "viewer") -> list[dict]:
    """The evaluation chart's points and bars as last drawn, in canvas pixels."""
    return page.evaluate(f"TetrisTrainer.{source}.evaluationMarks()")


def assert_drawn_with_intervals(marks: list[dict]) -> None:
    """Each point lies on its bar, and only an open bar reaches the top of the chart."""
    for mark in marks:
        assert mark["high"] <= mark["y"] <= mark["low"], mark  # canvas y grows downwards
        assert (mark["high"] == mark["top"]) == mark["open"], mark


def painted(page: Page, x: float, top: float, bottom: float, color: str = "#4fc3f7") -> list[bool]:
    """Whether each canvas pixel of the evaluation chart from (x, top) down to (x, bottom)
    has about this colour."""
    return page.evaluate(
        """([x, top, bottom, color]) => {
          const canvas = document.querySelector("#evaluations-chart canvas");
          const height = Math.round(bottom) - Math.round(top);
          const context = canvas.getContext("2d");
          const pixels = context.getImageData(Math.round(x), Math.round(top), 1, height).data;
          const wanted = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
          const near = (i) => wanted.every((value, c) => Math.abs(pixels[4 * i + c] - value) < 48);
          return Array.from({ length: height }, (_, i) => near(i));
        }""",
        [x, top, bottom, color],
    )


def test_evaluations_are_drawn_live_and_the_best_checkpoint_joins_the_list_without_a_reload(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    idle_after_test: stack.Service,
    user: object,
    tmp_path: Path,
) -> None:
    page, base = browser_page, live_daphne.url
    sign_in(page, base, "ada", PASSWORD)

    # max_minutes: a bound on the run, should the stop never arrive
    settings = {"max_minutes": "3", "threads": "1", **EVALUATED_OFTEN}
    run_id = start_run_in_form(page, base, "evaluated while it trains", settings)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.evaluate("window.notReloaded = true")  # gone if the page ever reloads

    # Evaluations come in as the run trains, each a point on its interval bar.
    page.wait_for_function(
        "TetrisTrainer.viewer.evaluationMarks().length >= 2", timeout=WAIT_MS, polling=500
    )
    expect(page.locator("#evaluations-chart canvas")).to_be_visible()
    expect(page.locator("#evaluations-empty")).to_be_hidden()
    marks = evaluation_marks(page)
    assert_drawn_with_intervals(marks)
    assert sum(mark["kept"] for mark in marks) == 1
    expect(page.locator("#stat-kept")).to_have_text(KEPT_SCORE)

    # The best-evaluated checkpoint joins the list, first and marked.
    best = page.locator('#checkpoint-list li[data-kind="best"]')
    expect(best).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#checkpoint-list li").first).to_have_attribute("data-kind", "best")
    expect(best.locator(".tag.best")).to_be_visible()
    expect(best.locator(".tag.best")).to_have_text("best evaluated")
    expect(page.locator('#best-games [data-kind="train"] .found')).to_be_visible()
    save_screenshot(page, "evaluations.png", tmp_path)

    page.click("#stop-button")
    expect(page.locator("#run-status")).to_have_text("stopped", timeout=WAIT_MS)
    assert page.evaluate("window.notReloaded") is True

    # Once stopped, what the page shows is what was stored.
    run = Run.objects.get(pk=run_id)
    stored = Evaluation.objects.filter(run=run, status=Evaluation.Status.DONE).count()
    page.wait_for_function("n => TetrisTrainer.viewer.evaluationMarks().length === n", arg=stored)
    expect(page.locator("#stat-kept")).to_have_text(score_text(run.best_evaluation))
    checkpoint = Checkpoint.objects.get(run=run, kind=Checkpoint.Kind.BEST)
    expect(best.locator("a")).to_have_attribute(
        "href", f"/runs/{run_id}/play/?checkpoint={checkpoint.pk}"
    )

    # A new snapshot (a reload here) draws the same evaluations from the database.
    page.reload()
    page.wait_for_function("n => TetrisTrainer.viewer.evaluationMarks().length === n", arg=stored)
    assert script_errors == []


def test_stored_evaluations_are_drawn_with_open_intervals_reaching_the_top(
    browser_page: Page, script_errors: list[str], live_daphne: stack.Service, user: object
) -> None:
    page, base = browser_page, live_daphne.url
    run = services.run_create(owner=user, name="evaluated")
    add_evaluation(run, 10_000, mean_lines=100.0, ci95_low=20.0, ci95_high=300.0)
    kept = keep_as_best(run, mean_lines=60.0, ci95_low=52.0, ci95_high=70.0)
    add_evaluation(run, 90_000, mean_lines=180.0, ci95_low=395.3, ci95_high=None, ended=0)
    sign_in(page, base, "ada", PASSWORD)
    page.goto(f"{base}/runs/{run.pk}/")

    page.wait_for_function("TetrisTrainer.viewer.evaluationMarks().length === 3")
    # The chart may be drawn again at its final size (a layout after the first paint): read
    # the marks once the canvas shows the first bar where they say.
    for _ in range(40):
        marks = evaluation_marks(page)
        bounded = marks[0]
        if all(painted(page, bounded["x"], bounded["high"] + 1, bounded["y"] - 6)):
            break
        page.wait_for_timeout(250)
    assert_drawn_with_intervals(marks)
    assert all(mark["high"] < mark["low"] for mark in marks)  # bars, not dots
    assert [mark["open"] for mark in marks] == [False, False, True]
    assert [mark["kept"] for mark in marks] == [False, True, False]
    assert marks[0]["x"] < marks[1]["x"] < marks[2]["x"]
    expect(page.locator("#stat-kept")).to_have_text("60.0 (95% CI 52.0\N{EN DASH}70.0, 10 games)")

    # A bounded interval is a solid bar, and nothing is painted beside it.
    bounded, _, unbounded = marks
    assert all(painted(page, bounded["x"], bounded["high"] + 1, bounded["y"] - 6))
    assert not any(painted(page, bounded["x"] + 8, bounded["high"] + 1, bounded["y"] - 6))
    # An open one is dashed up to an arrowhead at the top of the chart.
    dashes = painted(page, unbounded["x"], unbounded["top"] + 10, unbounded["y"] - 6)
    assert 0.3 < sum(dashes) / len(dashes) < 0.9
    assert all(painted(page, unbounded["x"], unbounded["top"] + 2, unbounded["top"] + 7))

    # Pointing at a point reads its figures, in the words the rest of the site uses.
    canvas = page.locator("#evaluations-chart canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    ratio = page.evaluate("window.devicePixelRatio")
    page.mouse.move(box["x"] + marks[2]["x"] / ratio, box["y"] + marks[2]["y"] / ratio)
    expect(page.locator("#evaluations-chart .chart-readout")).to_have_text(
        "90,000 placements: ≥ 395 (95% lower bound; no game ended before the cap of "
        "10,000 pieces), 10 games"
    )
    page.mouse.move(box["x"] + marks[1]["x"] / ratio, box["y"] + marks[1]["y"] / ratio)
    expect(page.locator("#evaluations-chart .chart-readout")).to_have_text(
        f"50,000 placements: {score_text(kept)} · the kept policy"
    )
    assert script_errors == []


def test_compare_draws_each_runs_evaluations_and_kept_score(
    browser_page: Page, script_errors: list[str], live_daphne: stack.Service, user: object
) -> None:
    page, base = browser_page, live_daphne.url
    first = services.run_create(owner=user, name="first")
    second = services.run_create(owner=user, name="second")
    add_evaluation(first, 20_000)
    keep_as_best(first, mean_lines=80.0, ci95_low=70.0, ci95_high=95.0)
    keep_as_best(second, mean_lines=20.0, ci95_low=600.0, ci95_high=None, ended=0)
    sign_in(page, base, "ada", PASSWORD)
    page.goto(f"{base}/compare/?runs={first.pk},{second.pk}")

    page.wait_for_function("TetrisTrainer.compare.evaluationMarks().length === 3")
    marks = evaluation_marks(page, "compare")
    assert_drawn_with_intervals(marks)
    assert [(mark["run"], mark["kept"]) for mark in marks] == [
        (first.pk, False),
        (first.pk, True),
        (second.pk, True),
    ]
    kept = page.locator("#legend .kept-score")
    expect(kept.nth(0)).to_have_text("80.0 (95% CI 70.0\N{EN DASH}95.0, 10 games)")
    expect(kept.nth(1)).to_have_text(
        "≥ 600 (95% lower bound; no game ended before the cap of 10,000 pieces), 10 games"
    )

    # The evaluations follow the x-axis chosen for the curves, and a run can be hidden.
    page.select_option("#x-axis", "wall_time")
    page.wait_for_function("TetrisTrainer.compare.evaluationMarks().length === 3", polling=100)
    assert_drawn_with_intervals(evaluation_marks(page, "compare"))
    page.uncheck(f'.run-shown[value="{first.pk}"]')
    page.wait_for_function("TetrisTrainer.compare.evaluationMarks().length === 1")
    assert evaluation_marks(page, "compare")[0]["run"] == second.pk

    assert script_errors == []


def test_run_list_kept_score_follows_the_run_as_the_list_polls(
    browser_page: Page, script_errors: list[str], live_daphne: stack.Service, user: object
) -> None:
    page, base = browser_page, live_daphne.url
    run = services.run_create(owner=user, name="evaluated")
    first = keep_as_best(run, mean_lines=80.0, ci95_low=70.0, ci95_high=95.0)
    sign_in(page, base, "ada", PASSWORD)
    cell = page.locator(f'tr[data-run-id="{run.pk}"] [data-field="best_evaluation"]')
    expect(cell).to_have_text(score_text(first))

    better = keep_as_best(run, mean_lines=150.0, ci95_low=900.5, ci95_high=None, ended=0)
    expect(cell).to_have_text(
        "≥ 901 (95% lower bound; no game ended before the cap of 10,000 pieces), 10 games"
    )
    assert cell.text_content() == score_text(better)  # the server would write it the same
    assert script_errors == []


# Score figures of every shape a page meets: ties at a rounding edge, tiny and huge means,
# one game, no game ended (with and without a cap), and an evaluation still running.
FIGURES = [
    {"mean_lines": 41.25, "ci95_low": 30.05, "ci95_high": 55.75},  # ties
    {"mean_lines": 0.15, "ci95_low": 0.0, "ci95_high": 0.45, "games": 4},
    {"mean_lines": 99.96, "ci95_low": 80.0, "ci95_high": 120.0},
    {"mean_lines": 512.5, "ci95_low": 401.5, "ci95_high": 700.25, "games": 20},
    {"mean_lines": 123456.5, "ci95_low": 99999.5, "ci95_high": 1234567.5, "games": 1},
    {"mean_lines": 12.0, "ci95_low": 99.95, "ci95_high": None, "ended": 0},
    {"mean_lines": 3.0, "ci95_low": 4.5, "ci95_high": None, "piece_cap": 0, "ended": 0},
    {"mean_lines": None, "ci95_low": None, "ci95_high": None, "status": "running"},
]


def test_pages_write_a_score_as_the_server_does(
    browser_page: Page, live_daphne: stack.Service, user: object
) -> None:
    run = services.run_create(owner=user, name="evaluated")
    summaries = [
        evaluation_summary(add_evaluation(run, 1000 * (i + 1), **figures))
        for i, figures in enumerate(FIGURES)
    ]
    sign_in(browser_page, live_daphne.url, "ada", PASSWORD)
    browser_page.goto(f"{live_daphne.url}/")  # the run list, its scripts loaded
    written = browser_page.evaluate(
        "summaries => summaries.map((s) => TetrisTrainer.scoreText(s))", summaries
    )
    wanted = [score_text(summary) for summary in summaries]
    differ = [(f, w, s) for f, w, s in zip(FIGURES, written, wanted, strict=True) if w != s]
    assert not differ, "page wrote / server writes:\n" + "\n".join(map(repr, differ))
