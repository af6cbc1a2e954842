"""The viewer pages: run list, new-run form and live viewer, through Django's test client."""

import html
import json
import re

import pytest
from django.test import Client
from django.utils.html import escape

from trainer import services
from trainer.exporting import evaluation_summary
from trainer.models import Checkpoint, Evaluation, Run
from trainer.rl.confidence import NO_SCORE
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


def add_evaluation(run: Run, total_pieces: int, **figures: object) -> Evaluation:
    """A done periodic evaluation of the run's policy at `total_pieces`, stored directly."""
    defaults = {
        "kind": Evaluation.Kind.PERIODIC,
        "episode": total_pieces // 100,
        "wall_time": total_pieces / 1000,
        "games": 10,
        "games_done": 10,
        "piece_cap": 10_000,
        "mean_lines": 40.0,
        "ci95_low": 30.0,
        "ci95_high": 55.0,
        "ended": 10,
    }
    return Evaluation.objects.create(run=run, total_pieces=total_pieces, **{**defaults, **figures})


def keep_as_best(run: Run, **figures: object) -> dict:
    """Store a periodic evaluation that chose the run's kept policy, as training would."""
    summary = evaluation_summary(add_evaluation(run, 50_000, best=True, **figures))
    Run.objects.filter(pk=run.pk).update(best_evaluation=summary)
    return summary


@pytest.mark.parametrize(
    ("figures", "shown"),
    [
        (
            {"mean_lines": 41.25, "ci95_low": 30.04, "ci95_high": 55.5},
            "41.3 (95% CI 30.0\N{EN DASH}55.5, 10 games)",
        ),
        (
            {"mean_lines": 12345.6, "ci95_low": 9876.4, "ci95_high": 15000.2, "games": 100},
            "12,346 (95% CI 9,876\N{EN DASH}15,000, 100 games)",
        ),
        (
            {"mean_lines": 180.0, "ci95_low": 395.3, "ci95_high": None, "ended": 0, "games": 1},
            "≥ 395 (95% lower bound; no game ended before the cap of 10,000 pieces), 1 game",
        ),
    ],
)
def test_run_list_shows_each_runs_kept_score_with_its_interval_and_games(
    ada: Client, user: object, figures: dict, shown: str
) -> None:
    keep_as_best(services.run_create(owner=user, name="evaluated"), **figures)
    services.run_create(owner=user, name="never evaluated")
    body = ada.get("/").content.decode()
    rows = re.search(r"<tbody>(.*?)</tbody>", body, re.S).group(1)
    scores = re.findall(r'data-field="best_evaluation">([^<]*)<', rows)
    assert scores == [NO_SCORE, html.escape(shown)]  # newest first
    assert "Kept policy (best)" in body


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


def test_viewer_shows_the_kept_score_and_lists_the_best_checkpoint_first(
    ada: Client, user: object
) -> None:
    run = services.run_create(owner=user, name="evaluated")
    keep_as_best(run, ci95_high=None, mean_lines=20.0, ci95_low=31.0, ended=0, piece_cap=500)
    for kind, episode in (("best", 50), ("latest", 90), ("latest", 120)):
        Checkpoint.objects.create(
            run=run,
            kind=kind,
            file=f"runs/{run.pk}/{kind}-{episode}.pt",
            episode=episode,
            total_pieces=episode * 100,
            wall_time=float(episode),
        )
    response = ada.get(f"/runs/{run.pk}/")
    body = response.content.decode()

    kept = re.search(r'id="stat-kept"[^>]*>([^<]*)<', body).group(1)
    assert html.unescape(kept) == (
        "≥ 31.0 (95% lower bound; no game ended before the cap of 500 pieces), 10 games"
    )
    listed = re.search(r'id="checkpoint-list">(.*?)</ul>', body, re.S).group(1)
    ids = [int(i) for i in re.findall(r'data-checkpoint-id="(\d+)"', listed)]
    by_episode = {c.pk: c.episode for c in Checkpoint.objects.filter(run=run)}
    assert [by_episode[i] for i in ids] == [50, 120, 90]  # best, then newest first
    best = listed.split("</li>")[0]
    assert f'href="/runs/{run.pk}/play/?checkpoint={ids[0]}"' in best
    assert "best evaluated</span>" in best and "hidden" not in best.split('class="tag best"')[1][:5]
    assert 'id="no-checkpoints" hidden' in body
    assert page_data(response, "viewer-page")["play_url"] == f"/runs/{run.pk}/play/"


def test_viewer_says_when_evaluations_will_come(ada: Client, user: object) -> None:
    run = services.run_create(
        owner=user,
        name="soon evaluated",
        config={"eval_every_pieces": 20_000, "eval_games": 4, "eval_piece_cap": 500},
    )
    body = ada.get(f"/runs/{run.pk}/").content.decode()
    assert "every 20,000 placements the greedy policy plays 4 games" in body
    assert re.search(f'id="stat-kept"[^>]*>{NO_SCORE}<', body)
    assert '<template id="checkpoint-item">' in body
    assert re.search(r'id="no-checkpoints">', body)  # shown: none yet

    never = services.run_create(owner=user, name="never", config={"eval_every_pieces": 0})
    body = ada.get(f"/runs/{never.pk}/").content.decode()
    assert "does not evaluate its policy while it trains" in body


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
