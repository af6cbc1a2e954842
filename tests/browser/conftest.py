"""A real browser for the viewer tests: Debian's chromium, driven by Playwright's sync API.

The tests skip, saying why, where /usr/bin/chromium is missing; they never download a
browser.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.pages import collect_script_errors
from tetris_site import stack
from trainer import services
from trainer.models import Run

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1360, "height": 900}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this folder's tests before their fixtures start anything, if there is no browser."""
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium)"
    )
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(skip)


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    """A fresh chromium page (its own profile and cookies) for one test.

    It bypasses the site's Content-Security-Policy, which forbids eval: Playwright's
    `wait_for_function` evaluates its predicate with it. The policy itself is held by
    test_content_security_policy.py, in a page that does not bypass it (`strict_page`).
    """
    yield from _chromium_page(monkeypatch, tmp_path, bypass_csp=True)


@pytest.fixture
def strict_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    """A fresh chromium page that keeps to the site's Content-Security-Policy."""
    yield from _chromium_page(monkeypatch, tmp_path, bypass_csp=False)


def _chromium_page(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, bypass_csp: bool
) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop set on this thread while the browser is
    # open; the tests' own ORM calls are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,
            bypass_csp=bypass_csp,
        )
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()


@pytest.fixture
def script_errors(browser_page: object) -> list[str]:
    """Uncaught JavaScript errors of the page, collected as they happen."""
    return collect_script_errors(browser_page)


@pytest.fixture
def idle_after_test(celery_worker: stack.Service) -> Iterator[stack.Service]:
    """The shared worker; runs a test leaves going are stopped, so the next test finds it idle."""
    yield celery_worker
    for run in Run.objects.filter(status__in=(Run.Status.QUEUED, Run.Status.RUNNING)):
        services.run_stop(run=run, user=run.owner)
    deadline = time.monotonic() + 30
    while Run.objects.filter(status__in=Run.ACTIVE).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
