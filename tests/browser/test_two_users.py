"""Two people in two browsers: one cannot watch the other's private run until its owner
makes it public in the viewer, and is cut off again when the owner makes it private."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.browser.pages import chart_points, sign_in
from tests.visualizer.test_compare import store_learning_curve
from tetris_site import stack
from trainer import services
from trainer.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

WAIT_MS = 60_000
# Opens the run's socket from the page and answers how it ended: its close code and the
# types of the messages that came before.
SOCKET_OUTCOME = """path => new Promise((resolve) => {
  const socket = new WebSocket(`ws://${window.location.host}${path}`);
  const types = [];
  socket.onmessage = (event) => types.push(JSON.parse(event.data).type);
  socket.onclose = (event) => resolve({ code: event.code, types });
})"""


@pytest.fixture
def two_browsers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Page, Page]]:
    """Two pages in two separate browser contexts: two people, each with their own cookies."""
    from playwright.sync_api import sync_playwright

    # As in browser_page: Playwright keeps an asyncio loop on this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            pages = []
            for _ in range(2):
                context = browser.new_context(viewport=VIEWPORT)
                context.set_default_timeout(WAIT_MS)
                pages.append(context.new_page())
            yield pages[0], pages[1]
        finally:
            browser.close()


def test_private_run_is_refused_to_another_user_until_its_owner_makes_it_public(
    two_browsers: tuple[Page, Page], live_daphne: stack.Service, user: object, other_user: object
) -> None:
    ada, bob = two_browsers
    errors: list[str] = []
    for page in (ada, bob):
        page.on("pageerror", lambda error: errors.append(str(error)))
    base = live_daphne.url
    run = services.run_create(owner=user, name="ada's secret experiment")
    store_learning_curve(run, 40)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.STOPPED)
    viewer = f"{base}/runs/{run.pk}/"
    sign_in(ada, base, "ada", "pw-for-tests-1")
    sign_in(bob, base, "bob", "pw-for-tests-2")

    # Private: bob gets a 404 page that names nothing, and the socket closes with 4403
    # before any snapshot.
    response = bob.goto(viewer)
    assert response.status == 404
    assert "secret experiment" not in bob.content()
    assert bob.goto(f"{base}/compare/?runs={run.pk}").status == 404
    bob.goto(f"{base}/")
    expect(bob.locator(f'tr[data-run-id="{run.pk}"]')).to_have_count(0)
    refused = bob.evaluate(SOCKET_OUTCOME, f"/ws/runs/{run.pk}/")
    assert refused == {"code": 4403, "types": []}

    # Ada makes it public from her viewer.
    ada.goto(viewer)
    expect(ada.locator("#connection")).to_have_attribute("data-state", "live")
    switch = ada.locator("#visibility-public")
    expect(switch).to_be_visible()
    expect(switch).not_to_be_checked()
    expect(ada.locator("#run-visibility")).to_have_text("private")
    switch.check()
    expect(ada.locator("#run-visibility")).to_have_text("public")
    expect(switch).to_be_enabled()
    assert Run.objects.get(pk=run.pk).visibility == "public"

    # Now bob watches it, read-only: no switch, no Start.
    assert bob.goto(viewer).status == 200
    expect(bob.locator("#connection")).to_have_attribute("data-state", "live")
    bob.wait_for_function("TetrisTrainer.viewer.chartPoints() === 40")
    assert chart_points(bob) == 40
    expect(bob.locator("#visibility-form")).to_be_hidden()
    expect(bob.locator("#start-button")).to_be_hidden()
    expect(ada.locator("#start-button")).to_be_visible()

    # Private again: bob's open viewer is cut off at once, ada's stays live.
    switch.uncheck()
    expect(ada.locator("#run-visibility")).to_have_text("private")
    expect(bob.locator("#connection")).to_have_attribute("data-state", "offline")
    expect(bob.locator("#connection .label")).to_have_text("no access")
    expect(ada.locator("#connection")).to_have_attribute("data-state", "live")
    assert bob.goto(viewer).status == 404
    assert errors == []
