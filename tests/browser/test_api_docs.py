"""/api/docs in a real browser that can reach no host but ours: Swagger UI is served here."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tetris_site import stack

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_api_docs_list_the_operations_with_every_other_host_blocked(
    browser_page: Page, script_errors: list[str], live_daphne: stack.Service
) -> None:
    page = browser_page
    ours = urlsplit(live_daphne.url).netloc
    elsewhere: list[str] = []

    def only_ours(route: Route) -> None:
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.goto(f"{live_daphne.url}/api/docs")
    operations = page.locator(".opblock-summary-path")
    expect(operations.filter(has_text="/api/runs/{run_id}/evaluations").first).to_be_visible()
    expect(operations.filter(has_text="/api/status")).to_be_visible()
    assert operations.count() >= 10
    assert elsewhere == []
    assert script_errors == []
