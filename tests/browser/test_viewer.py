"""The live viewer in a real browser, against the real stack: daphne, Redis, a Celery worker
training a real run, and chromium."""

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import (
    board_image,
    chart_points,
    save_screenshot,
    sign_in,
    start_run_in_form,
    updating_screenshots,
)
from tetris_site import stack
from trainer import services
from trainer.models import Metric, Run

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"  # the `user` fixture's
WAIT_MS = 60_000


def test_quick_run_is_watched_live_stopped_reloaded_and_started_again(
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
    settings = {"max_minutes": "3", "threads": "1"}
    run_id = start_run_in_form(page, base, "watched in a browser", settings)

    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#run-status")).to_have_text("running", timeout=WAIT_MS)

    # The board is drawn from live frames, and it changes.
    page.wait_for_selector("#board-wrap.has-frame", timeout=WAIT_MS)
    first = board_image(page)
    page.wait_for_function(
        "first => document.getElementById('board').toDataURL() !== first", arg=first
    )
    expect(page.locator("#stat-score")).to_have_text(re.compile(r"^[\d,]+$"))

    # The charts grow as games finish.
    page.wait_for_function("TetrisTrainer.viewer.chartPoints() > 0", timeout=WAIT_MS)
    seen = chart_points(page)
    page.wait_for_function("n => TetrisTrainer.viewer.chartPoints() > n", arg=seen)
    expect(page.locator('.chart[data-metric="lines"] canvas')).to_be_visible()
    expect(page.locator('.chart[data-metric="dqn/value"] canvas')).to_be_visible()

    # The agent's options: the toggle reaches the training worker, which adds them.
    page.check("#overlay-toggle")
    page.wait_for_function(
        "(TetrisTrainer.viewer.overlay().options || []).length > 0", timeout=WAIT_MS
    )
    options = page.evaluate("TetrisTrainer.viewer.overlay().options")
    assert options[0]["chosen"] and sum(option["chosen"] for option in options) == 1
    assert all("terms" not in option for option in options)  # a value network's
    values = [option["value"] for option in options]
    assert values == sorted(values, reverse=True)
    save_screenshot(page, "overlay-run.png", tmp_path)
    page.uncheck("#overlay-toggle")
    if updating_screenshots():
        page.wait_for_timeout(30_000)  # let the curves grow for the README's picture
    save_screenshot(page, "viewer-live.png", tmp_path)

    runs = page.context.new_page()
    runs.goto(f"{base}/")
    row = f'tr[data-run-id="{run_id}"]'
    expect(runs.locator(f'{row} [data-field="status"]')).to_have_text("running")
    runs.wait_for_function(  # the list's figures follow the run as it polls
        "row => Number(document.querySelector(`${row} [data-field=episodes]`).textContent) >= 10",
        arg=row,
        timeout=15_000,
    )
    save_screenshot(runs, "runs.png", tmp_path)
    runs.close()

    page.click("#stop-button")
    expect(page.locator("#run-status")).to_have_text("stopped", timeout=WAIT_MS)
    expect(page.locator("#start-button")).to_be_visible()
    expect(page.locator("#stop-button")).to_be_hidden()
    assert Run.objects.get(pk=run_id).status == Run.Status.STOPPED

    # After a reload the history comes back from the database at once.
    page.reload()
    page.wait_for_function("TetrisTrainer.viewer.chartPoints() > 0", timeout=10_000)
    expect(page.locator("#run-status")).to_have_text("stopped")

    # Start resumes it from its checkpoint; stop it again before the test ends.
    page.click("#start-button")
    expect(page.locator("#run-status")).to_have_text("running", timeout=WAIT_MS)
    page.click("#stop-button")
    expect(page.locator("#run-status")).to_have_text("stopped", timeout=WAIT_MS)
    assert script_errors == []


@pytest.fixture
def restartable_daphne(stack_env: dict[str, str], tmp_path: Path) -> Iterator[list]:
    """A daphne of this test's own, which it may kill and start again on the same port."""
    port = stack.free_port()
    log = tmp_path / "daphne.log"
    services_started = [stack.start_daphne(stack_env, port=port, log_path=log)]
    yield services_started
    for service in services_started:
        service.stop(grace=5)


def add_metrics(run: Run, episodes: range, lines: Callable[[int], int] = lambda e: e * 10) -> None:
    """Store finished games for a run, as the worker's recorder would."""
    Metric.objects.bulk_create(
        Metric(
            run=run,
            episode=episode,
            lines=lines(episode),
            score=episode * 400,
            pieces=episode * 30,
            reward=float(episode),
            loss=1.0 / episode,
            epsilon=0.05,
            placements_per_second=1000.0,
            total_pieces=episode * 30,
            wall_time=float(episode),
        )
        for episode in episodes
    )


def test_viewer_reconnects_after_a_server_restart_and_resyncs_without_duplicates(
    browser_page: Page,
    script_errors: list[str],
    restartable_daphne: list,
    stack_env: dict[str, str],
    user: object,
) -> None:
    page, server = browser_page, restartable_daphne[0]
    run = services.run_create(owner=user, name="across a restart")
    add_metrics(run, range(1, 41))
    sign_in(page, server.url, "ada", PASSWORD)
    page.goto(f"{server.url}/runs/{run.pk}/")
    page.wait_for_function("TetrisTrainer.viewer.chartPoints() === 40")

    server.kill()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#connection")).to_contain_text("reconnecting in")
    add_metrics(run, range(41, 61))  # games finished while the viewer was away
    time.sleep(8)  # long enough for the backoff to reach its longest wait

    port = int(server.url.rsplit(":", 1)[1])
    restartable_daphne.append(stack.start_daphne(stack_env, port=port))
    # Back within 5 s of the server answering again, however long it was down.
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=5000)
    page.wait_for_function("TetrisTrainer.viewer.chartPoints() === 60")
    assert chart_points(page) == 60
    assert script_errors == []


def debiased_ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing, written out independently of the page's."""
    smoothed, last = [], 0.0
    for count, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        smoothed.append(last / (1 - weight**count))
    return smoothed


def test_smoothing_slider_is_a_debiased_ema_and_raw_shows_the_data_as_is(
    browser_page: Page,
    script_errors: list[str],
    live_daphne: stack.Service,
    user: object,
) -> None:
    page = browser_page
    run = services.run_create(owner=user, name="smoothed")
    add_metrics(run, range(1, 31), lines=lambda e: 100 * (e % 2))
    raw = [100.0 * (e % 2) for e in range(1, 31)]
    sign_in(page, live_daphne.url, "ada", PASSWORD)
    page.goto(f"{live_daphne.url}/runs/{run.pk}/")
    page.wait_for_function("(TetrisTrainer.viewer.chartSeries('lines') || [[]])[0].length === 30")

    def lines_series() -> tuple[list, list]:
        _, shown_raw, smoothed = page.evaluate("TetrisTrainer.viewer.chartSeries('lines')")
        return shown_raw, smoothed

    shown_raw, smoothed = lines_series()
    assert shown_raw == raw
    assert smoothed == pytest.approx(debiased_ema(raw, 0.6))

    page.locator("#smoothing").fill("0.9")
    expect(page.locator("#smoothing-value")).to_have_text("0.90")
    expected = debiased_ema(raw, 0.9)
    page.wait_for_function(
        "y => Math.abs(TetrisTrainer.viewer.chartSeries('lines')[2][1] - y) < 1e-6",
        arg=expected[1],
    )
    assert lines_series()[1] == pytest.approx(expected)

    page.check("#raw")
    expect(page.locator("#smoothing")).to_be_disabled()
    page.wait_for_function(
        "(s => s[1].every((v, i) => v === s[2][i]))(TetrisTrainer.viewer.chartSeries('lines'))"
    )
    assert lines_series() == (raw, raw)
    assert script_errors == []
