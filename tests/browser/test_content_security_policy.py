"""The Content-Security-Policy holds on every kind of page, the admin's and Swagger UI's
included, in a browser that keeps to it: the pages work and it refuses nothing."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import collect_script_errors, sign_in
from tetris_site import stack
from trainer import services
from trainer.models import Experiment

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_every_kind_of_page_works_under_the_policy(
    strict_page: Page, live_daphne: stack.Service, django_user_model: type
) -> None:
    page, base = strict_page, live_daphne.url
    script_errors = collect_script_errors(page)
    staff = django_user_model.objects.create_superuser("root", password="pw-for-csp-1")
    first = services.run_create(owner=staff, name="first")
    second = services.run_create(owner=staff, name="second")
    # The row alone: nothing scheduled, no run queued.
    experiment = Experiment.objects.create(
        owner=staff,
        name="sweep",
        preset="quick",
        trials=2,
        seeds=3,
        parallel=2,
        eval_games=5,
        eval_piece_cap=0,
        grid={"lr": [0.001, 0.0003]},
    )
    sign_in(page, base, "root", "pw-for-csp-1")
    for path, shown in [
        ("/", "#runs"),
        ("/runs/new/", "#id_name"),
        (f"/runs/{first.pk}/", "#board"),
        (f"/compare/?runs={first.pk},{second.pk}", "#legend"),
        ("/play/bcts/", "#board"),
        ("/experiments/", "#experiments"),
        ("/experiments/new/", "#id_settings"),
        (f"/experiments/{experiment.pk}/", "#configurations"),
        ("/admin/", "#content"),
        ("/admin/trainer/run/", "#result_list"),
        (f"/admin/trainer/run/{first.pk}/change/", "#run_form"),
        ("/api/docs", ".opblock-summary-path"),
    ]:
        response = page.goto(f"{base}{path}")
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        expect(page.locator(shown).first).to_be_visible()
        page.wait_for_timeout(300)  # late scripts and sockets
    assert script_errors == []
