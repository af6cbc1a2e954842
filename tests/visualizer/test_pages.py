"""The viewer pages: run list, new-run form and live viewer, through Django's test client."""

import html
import json
import re

import pytest
from django.test import Client
from django.utils.html import escape

from trainer import services
from trainer.models import Run
from trainer.rl.config import TrainConfig

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(client: Client, user: object) -> Client:
    client.force_login(user)
    return client


def page_data(response: object, element_id: str) -> dict:
    """The JSON that a page hands its script through json_script."""
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, f"no json_script #{element_id}"
    return json.loads(match.group(1))


def field_error(response: object, field: str) -> str:
    """The error message rendered next to a form field."""
    match = re.search(rf'id="{field}-error">([^<]*)<', response.content.decode())
    assert match, f"no error shown next to {field}"
    return html.unescape(match.group(1))


@pytest.mark.parametrize("url", ["/", "/runs/new/", "/runs/1/"])
def test_pages_send_anonymous_visitors_to_sign_in(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_run_list_shows_own_and_public_runs_but_not_others_private(
    ada: Client, user: object, other_user: object
) -> None:
    services.run_create(owner=user, name="mine")
    services.run_create(owner=other_user, name="bobs-public", visibility="public")
    services.run_create(owner=other_user, name="bobs-secret")
    response = ada.get("/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "mine" in body and "bobs-public" in body
    assert "bobs-secret" not in body
    assert 'id="compare-button"' in body and "disabled" in body
    assert 'href="/runs/new/"' in body
    assert page_data(response, "runs-page")["runs_url"].startswith("/api/runs/")


def test_run_list_draws_the_stored_learning_curve(ada: Client, user: object) -> None:
    run = services.run_create(owner=user, name="learning")
    Run.objects.filter(pk=run.pk).update(curve=[[10, 1.0, 10], [20, 5.0, 10], [30, 9.0, 10]])
    body = ada.get("/").content.decode()
    assert re.search(r'<polyline points="0\.0,28\.0 60\.0,14\.0 120\.0,0\.0"', body)


def test_viewer_of_another_users_private_run_is_404(ada: Client, other_user: object) -> None:
    run = services.run_create(owner=other_user, name="bobs-secret")
    assert ada.get(f"/runs/{run.pk}/").status_code == 404
    assert ada.get("/runs/999999/").status_code == 404


def test_viewer_of_a_public_run_hands_its_script_the_socket_and_board_size(
    ada: Client, other_user: object
) -> None:
    run = services.run_create(
        owner=other_user, name="bobs-public", visibility="public", config={"width": 8}
    )
    response = ada.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert '<canvas id="board"' in body and 'id="next-piece"' in body
    assert 'id="smoothing"' in body and 'id="raw"' in body
    data = page_data(response, "viewer-page")
    assert data["socket_path"] == f"/ws/runs/{run.pk}/"
    assert (data["width"], data["height"], data["algorithm"]) == (8, 20, "dqn")


def test_viewer_bundles_uplot_and_loads_nothing_from_other_sites(ada: Client, user: object) -> None:
    run = services.run_create(owner=user, name="mine")
    body = ada.get(f"/runs/{run.pk}/").content.decode()
    assert "/static/vendor/uplot/uPlot.iife.min.js" in body
    assert "/static/vendor/uplot/uPlot.min.css" in body
    assert not re.search(r'(src|href)="(https?:)?//', body)


def test_viewer_scripts_live_in_static_files_not_inline(ada: Client, user: object) -> None:
    run = services.run_create(owner=user, name="mine")
    body = ada.get(f"/runs/{run.pk}/").content.decode()
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", body)
    assert inline == []


def test_failed_run_shows_its_error(ada: Client, user: object) -> None:
    run = services.run_create(owner=user, name="doomed")
    Run.objects.filter(pk=run.pk).update(status="failed", error="worker lost: w1")
    body = ada.get(f"/runs/{run.pk}/").content.decode()
    assert "worker lost: w1" in body
    assert re.search(r'id="run-error"\s*>', body)  # not hidden


def test_static_files_are_served_without_sign_in(client: Client) -> None:
    for path in ("/static/css/site.css", "/static/vendor/uplot/uPlot.iife.min.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        b"".join(response.streaming_content)


def test_new_run_form_offers_every_config_field_with_its_doc_and_range(ada: Client) -> None:
    response = ada.get("/runs/new/")
    body = response.content.decode()
    assert response.status_code == 200
    text = re.sub(r"</?code>", "", body)
    for spec in TrainConfig.field_specs():
        assert f'name="{spec["name"]}"' in body, spec["name"]
        assert escape(spec["doc"].replace("`", "")) in text, spec["name"]
    assert "<code>dqn</code>" in body
    assert re.search(r'name="gamma"[^>]*max="0.9999"|max="0.9999"[^>]*name="gamma"', body)
    assert '<option value="cem">' in body
    for name in ("name", "preset", "visibility", "csrfmiddlewaretoken"):
        assert f'name="{name}"' in body
    presets = page_data(response, "presets")
    assert set(presets) == {"quick", "standard", "record"}
    assert presets["record"]["algorithm"] == "cem"


def test_invalid_form_shows_each_error_next_to_its_field_and_creates_nothing(
    ada: Client, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = ada.post(
            "/runs/new/",
            {
                "name": "bad",
                "preset": "quick",
                "visibility": "private",
                "lr": "fast",
                "gamma": "7",
                "algorithm": "ppo",
            },
        )
    assert response.status_code == 200
    assert "must be a number between" in field_error(response, "lr")
    assert "got '7'" in field_error(response, "gamma")
    assert "must be one of dqn, cem" in field_error(response, "algorithm")
    body = response.content.decode()
    assert 'value="fast"' in body  # what the user typed stays in the form
    assert Run.objects.count() == 0
    assert callbacks == []


def test_cross_field_error_shows_next_to_its_field(ada: Client) -> None:
    response = ada.post(
        "/runs/new/",
        {
            "name": "x",
            "preset": "quick",
            "visibility": "private",
            "lr": "0.001",
            "lr_final": "0.01",
        },
    )
    assert "must be at most lr" in field_error(response, "lr_final")
    assert Run.objects.count() == 0


def test_form_without_a_name_creates_nothing(ada: Client) -> None:
    response = ada.post("/runs/new/", {"name": "", "preset": "quick", "visibility": "private"})
    assert response.status_code == 200
    assert field_error(response, "name")
    assert Run.objects.count() == 0


def test_valid_form_creates_queues_and_redirects_to_the_viewer(
    ada: Client, user: object, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = ada.post(
            "/runs/new/",
            {
                "name": "my first run",
                "preset": "quick",
                "visibility": "public",
                "max_minutes": "2.5",
                "hidden_size": "32",
                "randomizer": "bag7",
            },
        )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.pk}/"
    assert (run.name, run.owner, run.status, run.visibility) == (
        "my first run",
        user,
        "queued",
        "public",
    )
    assert run.config["max_minutes"] == 2.5
    assert run.config["hidden_size"] == 32
    assert run.config["randomizer"] == "bag7"
    assert len(callbacks) == 1  # the training task is sent once the transaction commits


def test_blank_settings_take_the_chosen_presets_values(ada: Client) -> None:
    ada.post("/runs/new/", {"name": "record", "preset": "record", "visibility": "private"})
    run = Run.objects.get()
    assert run.preset == "record"
    assert run.config == TrainConfig.from_preset("record").to_dict()


def test_new_run_form_rejects_posts_without_the_csrf_token(user: object) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/runs/new/", {"name": "x", "preset": "quick", "visibility": "private"})
    assert response.status_code == 403
    assert Run.objects.count() == 0
