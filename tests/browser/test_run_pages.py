"""The run list and the new-run form in a real browser, served by a live daphne."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import sign_in
from tetris_site import stack
from trainer import services
from trainer.models import Run
from trainer.rl.config import TrainConfig

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"  # the `user` fixture's
POLL_MS = 15_000  # the list polls every few seconds


def test_run_list_follows_status_changes_and_new_runs_without_a_reload(
    browser_page: Page, script_errors: list[str], live_daphne: stack.Service, user: object
) -> None:
    page = browser_page
    run = services.run_create(owner=user, name="first")
    sign_in(page, live_daphne.url, "ada", PASSWORD)
    row = page.locator(f'tr[data-run-id="{run.pk}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("queued")

    Run.objects.filter(pk=run.pk).update(status="running", episodes=12, best_lines=345)
    expect(row.locator('[data-field="status"]')).to_have_text("running", timeout=POLL_MS)
    expect(row.locator('[data-field="status"]')).to_have_class("badge status-running")
    expect(row.locator('[data-field="episodes"]')).to_have_text("12")
    expect(row.locator('[data-field="best_lines"]')).to_have_text("345")

    newer = services.run_create(owner=user, name="second")
    new_row = page.locator("tbody tr").first
    expect(new_row).to_have_attribute("data-run-id", str(newer.pk), timeout=POLL_MS)
    expect(new_row.locator("a")).to_have_attribute("href", f"/runs/{newer.pk}/")
    assert script_errors == []


def test_compare_button_needs_two_ticked_runs(
    browser_page: Page, live_daphne: stack.Service, user: object, other_user: object
) -> None:
    page = browser_page
    mine = services.run_create(owner=user, name="mine")
    public = services.run_create(owner=other_user, name="bobs", visibility="public")
    sign_in(page, live_daphne.url, "ada", PASSWORD)
    button = page.locator("#compare-button")
    expect(button).to_be_disabled()

    page.check(f'tr[data-run-id="{mine.pk}"] .compare-tick')
    expect(button).to_be_disabled()
    page.check(f'tr[data-run-id="{public.pk}"] .compare-tick')
    expect(button).to_be_enabled()
    expect(button).to_have_text("Compare 2 runs")

    button.click()
    page.wait_for_url(lambda url: url.endswith(f"/compare/?runs={public.pk},{mine.pk}"))


def test_choosing_a_preset_fills_every_setting_with_its_values(
    browser_page: Page, live_daphne: stack.Service, user: object
) -> None:
    page = browser_page
    sign_in(page, live_daphne.url, "ada", PASSWORD)
    page.goto(f"{live_daphne.url}/runs/new/")
    expect(page.locator("#id_algorithm")).to_have_value("dqn")
    expect(page.locator("#cem-settings")).not_to_have_attribute("open", "")

    page.select_option("#id_preset", "record")
    for name, value in TrainConfig.from_preset("record").to_dict().items():
        shown = page.input_value(f"#id_{name}")
        if isinstance(value, str):
            assert shown == value, name
        else:
            assert float(shown) == value, name
    expect(page.locator("#cem-settings")).to_have_attribute("open", "")
