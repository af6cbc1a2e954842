"""Steps that several browser tests take: signing in, reading the viewer, screenshots."""

import os
import re
import shutil
from pathlib import Path

from playwright.sync_api import Page, expect

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def sign_in(page: Page, base_url: str, username: str, password: str) -> None:
    """Sign in through the login form, as a person would."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    expect(page.locator(".topbar .who")).to_have_text(username)


def board_image(page: Page) -> str:
    """The board canvas's pixels, as a data URL."""
    return page.evaluate("document.getElementById('board').toDataURL()")


def chart_points(page: Page) -> int:
    """How many metric points the viewer's charts hold."""
    return page.evaluate("TetrisTrainer.viewer.chartPoints()")


def updating_screenshots() -> bool:
    """True when this run of the tests should refresh docs/screenshots."""
    return os.environ.get("UPDATE_SCREENSHOTS") == "1"


def save_screenshot(page: Page, name: str, folder: Path) -> Path:
    """Screenshot into `folder`; also into docs/screenshots when UPDATE_SCREENSHOTS=1."""
    path = folder / name
    # The whole page, but no taller than its content: a short list leaves no empty screen.
    width, height = page.evaluate(
        "[document.documentElement.clientWidth,"
        " Math.ceil(document.querySelector('main').getBoundingClientRect().bottom + scrollY)]"
    )
    page.screenshot(
        path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}
    )
    if updating_screenshots():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)
    return path


def start_run_in_form(page: Page, base: str, name: str, settings: dict[str, str]) -> int:
    """Fill the New run form (preset quick, then `settings` by field name), submit it, and
    return the new run's id once its viewer is open."""
    page.goto(f"{base}/runs/new/")
    page.fill("#id_name", name)
    page.select_option("#id_preset", "quick")
    for field, value in settings.items():
        page.fill(f"#id_{field}", value)
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def collect_script_errors(page: Page) -> list[str]:
    """The page's uncaught errors, and anything a Content-Security-Policy refused."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def refused(message: object) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            errors.append(message.text)

    page.on("console", refused)
    return errors
