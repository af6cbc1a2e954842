"""Comparing runs in a real browser: from the run list's ticks to overlaid curves, served by
a live daphne."""

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import save_screenshot, sign_in
from tests.visualizer.test_compare import LONG_RUN_EPISODES, store_learning_curve
from tetris_site import stack
from trainer import services
from trainer.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"  # the `user` fixture's
CHARTED = ["lines", "score", "pieces", "loss", "epsilon"]


def compared_series(page: Page, metric: str) -> list[list]:
    """[x, then each run's raw and smoothed values] as the metric's chart draws them."""
    return page.evaluate("metric => TetrisTrainer.compare.series(metric)", metric)


def wait_for_drawn(page: Page, **expected: object) -> None:
    """Wait until the charts were last drawn with these settings (x, smoothing, amount)."""
    page.wait_for_function(
        "expected => { const drawn = TetrisTrainer.compare.drawn();"
        " return Object.entries(expected).every(([key, value]) => drawn[key] === value); }",
        arg=expected,
    )


def own_points(column: list, x: list) -> tuple[list, list]:
    """A run's own (x, value) points in a column that uPlot.join padded for the others."""
    kept = [(xv, v) for xv, v in zip(x, column, strict=True) if v is not None]
    return [xv for xv, _ in kept], [v for _, v in kept]


def trailing_mean(values: list[float], window: int) -> list[float]:
    """The mean of each value and the window - 1 before it."""
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
        for i in range(len(values))
    ]


def test_ticked_runs_are_overlaid_with_their_differing_settings_highlighted(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    user: object,
    tmp_path: Path,
) -> None:
    page, base = browser_page, live_daphne.url
    shapes = [  # name, config, episodes, best lines, pace
        ("lr 1e-3", {"lr": 1e-3}, 4000, 260.0, 0.25),
        ("lr 1e-4", {"lr": 1e-4}, 4000, 150.0, 0.5),
        ("lr 1e-3, 128 hidden", {"lr": 1e-3, "hidden_size": 128}, 3000, 330.0, 0.3),
        ("lr 1e-2", {"lr": 1e-2}, 2500, 60.0, 0.2),
    ]
    runs = []
    for seed, (name, config, episodes, best, pace) in enumerate(shapes):
        run = services.run_create(owner=user, name=name, config=config)
        store_learning_curve(run, episodes, best=best, pace=pace, seed=seed)
        Run.objects.filter(pk=run.pk).update(status=Run.Status.FINISHED)
        runs.append(run)
    runs.reverse()  # the list shows the newest first, and Compare keeps that order

    sign_in(page, base, "ada", PASSWORD)
    for run in runs:
        page.check(f'tr[data-run-id="{run.pk}"] .compare-tick')
    page.click("#compare-button")
    page.wait_for_url(
        lambda url: url.endswith(f"/compare/?runs={','.join(str(r.pk) for r in runs)}")
    )
    page.wait_for_function("TetrisTrainer.compare.ready()")

    # One chart per figure, each with every run's curve in its own colour.
    assert page.evaluate("TetrisTrainer.compare.charted()") == CHARTED
    expect(page.locator('.chart[data-metric="lines"] canvas')).to_be_visible()
    lines = compared_series(page, "lines")
    assert len(lines) == 1 + 2 * len(runs)
    for index, run in enumerate(runs):
        episodes, _ = own_points(lines[1 + 2 * index], lines[0])
        assert episodes[-1] == Run.objects.get(pk=run.pk).episodes
    legend = page.locator("#legend li")
    expect(legend).to_have_count(len(runs))
    colors = {
        legend.nth(i).evaluate("li => li.style.getPropertyValue('--run-color')") for i in range(4)
    }
    assert len(colors) == 4

    # The settings that differ stand out; with "only differences" the rest step aside.
    expect(page.locator('tr[data-field="lr"]')).to_have_class("differs")
    expect(page.locator('tr[data-field="hidden_size"]')).to_have_class("differs")
    expect(page.locator('tr[data-field="width"]')).not_to_have_class("differs")
    expect(page.locator('tr[data-field="lr"] td').first).to_have_text("0.01")
    page.check("#only-differences")
    expect(page.locator('tr[data-field="width"]')).to_be_hidden()
    expect(page.locator('tr[data-field="lr"]')).to_be_visible()
    save_screenshot(page, "compare.png", tmp_path)

    # The x-axis: pieces placed, then wall time, each run ending where it ended.
    page.select_option("#x-axis", "total_pieces")
    wait_for_drawn(page, x="total_pieces")
    by_pieces = compared_series(page, "lines")
    assert max(by_pieces[0]) == max(Run.objects.get(pk=run.pk).total_pieces for run in runs)
    page.select_option("#x-axis", "wall_time")
    wait_for_drawn(page, x="wall_time")
    by_time = compared_series(page, "lines")
    longest = max(Run.objects.get(pk=run.pk).wall_time for run in runs)
    assert max(by_time[0]) == pytest.approx(longest)
    page.select_option("#x-axis", "episode")
    wait_for_drawn(page, x="episode", smoothing="ema", amount=0.6)

    # Smoothing: the debiased EMA by default, then a plain moving average, then raw.
    def first_run_curves() -> tuple[list, list]:
        series = compared_series(page, "lines")
        _, raw = own_points(series[1], series[0])
        _, smoothed = own_points(series[2], series[0])
        return raw, smoothed

    raw, ema = first_run_curves()
    assert ema != raw
    assert ema == pytest.approx(
        page.evaluate("values => TetrisTrainer.debiasedEma(values, 0.6)", raw)
    )
    page.select_option("#smoothing-kind", "mean")
    page.locator("#smoothing").fill("50")
    expect(page.locator("#smoothing-value")).to_have_text("50 pts")
    wait_for_drawn(page, smoothing="mean", amount=50)
    raw, mean = first_run_curves()
    assert mean == pytest.approx(trailing_mean(raw, 50))
    page.check("#raw")
    expect(page.locator("#smoothing")).to_be_disabled()
    wait_for_drawn(page, smoothing="none")
    raw, shown = first_run_curves()
    assert shown == raw

    # A run can be taken off the charts from its legend entry.
    page.uncheck(f'.run-shown[value="{runs[0].pk}"]')
    page.wait_for_function(
        "ids => JSON.stringify(TetrisTrainer.compare.shownRuns()) === JSON.stringify(ids)",
        arg=[run.pk for run in runs[1:]],
    )
    assert script_errors == []


def test_compare_page_stays_quick_with_ten_long_runs(
    browser_page: Page, script_errors: list[str], live_daphne: stack.Service, user: object
) -> None:
    page, base = browser_page, live_daphne.url
    runs = [services.run_create(owner=user, name=f"run {i}") for i in range(10)]
    for index, run in enumerate(runs):
        store_learning_curve(run, LONG_RUN_EPISODES, best=100.0 + 30 * index, seed=index)
    sign_in(page, base, "ada", PASSWORD)

    started = time.perf_counter()
    page.goto(f"{base}/compare/?runs={','.join(str(run.pk) for run in runs)}")
    page.wait_for_function("TetrisTrainer.compare.ready()")
    loaded = time.perf_counter() - started

    counts = page.evaluate("TetrisTrainer.compare.pointsPerRun()")
    assert len(counts) == 10 and all(500 <= count <= 1000 for count in counts)
    assert len(compared_series(page, "lines")) == 21
    # A smoothing change redraws every chart from the points already there.
    redraws = []
    for kind, value in (("ema", 0.9), ("mean", 100), ("ema", 0.3)):
        page.select_option("#smoothing-kind", kind)
        page.locator("#smoothing").fill(str(value))
        wait_for_drawn(page, smoothing=kind, amount=value)
        redraws.append(page.evaluate("TetrisTrainer.compare.lastDrawMs()"))
    page.select_option("#x-axis", "total_pieces")
    wait_for_drawn(page, x="total_pieces")
    rebuild = page.evaluate("TetrisTrainer.compare.lastDrawMs()")
    # Reported, not asserted: docs/BENCHMARKS.md ("## Compare") has the figures.
    print(
        f"\ncompare page, 10 runs x {LONG_RUN_EPISODES:,} episodes: "
        f"loaded and drawn in {loaded:.2f} s; "
        f"redraw after a smoothing change {max(redraws):.0f} ms at most; "
        f"x-axis switch {rebuild:.0f} ms"
    )
    assert script_errors == []
