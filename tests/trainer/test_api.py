"""The runs API: validation, access, downsampled metrics, CSV export, readable errors."""

import json

import pytest
from django.test import Client

from trainer import services
from trainer.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(client: Client, user: object) -> Client:
    client.force_login(user)
    return client


def post_json(client: Client, url: str, body: object) -> object:
    return client.post(url, json.dumps(body), content_type="application/json")


def test_anonymous_requests_get_401(client: Client) -> None:
    assert client.get("/api/runs/").status_code == 401
    assert client.post("/api/runs/1/stop").status_code == 401


def test_status_is_public_and_names_no_runs(client: Client, user: object) -> None:
    services.run_create(owner=user, name="secret-name")
    response = client.get("/api/status")
    assert response.status_code == 200
    body = response.json()
    assert body["runs"]["queued"] == 1
    assert "secret-name" not in response.content.decode()


def test_create_answers_201_with_id_and_status(
    ada: Client, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_json(ada, "/api/runs/", {"name": "first", "config": {"lr": 0.002}})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["config"]["lr"] == 0.002
    assert len(callbacks) == 1


def test_the_fourth_active_run_of_a_user_is_refused_with_429_while_others_start(
    ada: Client, client: Client, other_user: object, settings: object
) -> None:
    settings.MAX_ACTIVE_RUNS_PER_USER = 3
    for n in range(3):
        assert post_json(ada, "/api/runs/", {"name": f"run {n}"}).status_code == 201
    refused = post_json(ada, "/api/runs/", {"name": "one too many"})
    assert refused.status_code == 429, refused.content
    assert "MAX_ACTIVE_RUNS_PER_USER" in refused.json()["error"]
    assert not Run.objects.filter(name="one too many").exists()

    bob = Client()
    bob.force_login(other_user)
    assert post_json(bob, "/api/runs/", {"name": "bob's"}).status_code == 201

    # A stopped run frees its place; resuming it takes one again.
    first = Run.objects.get(name="run 0")
    assert ada.post(f"/api/runs/{first.pk}/stop").json()["status"] == "stopped"
    assert post_json(ada, "/api/runs/", {"name": "in its place"}).status_code == 201
    assert ada.post(f"/api/runs/{first.pk}/resume").status_code == 429


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "config": {"lr": "fast"}}, "lr"),
        ({"name": "x", "config": {"gamma": 7}}, "gamma"),
        ({"name": "x", "algorithm": "ppo"}, "algorithm"),
        ({"name": "x", "config": {"warp": 9}}, "warp"),
        ({"name": ""}, "name"),
        ({"config": {}}, "name"),
        ({"name": "x", "config": [1, 2]}, "config"),
    ],
)
def test_invalid_input_gets_400_per_field_and_queues_nothing(
    ada: Client, django_capture_on_commit_callbacks: object, body: dict, field: str
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_json(ada, "/api/runs/", body)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert errors.get(field)
    assert Run.objects.count() == 0
    assert callbacks == []


def test_malformed_json_body_is_400(ada: Client) -> None:
    response = ada.post("/api/runs/", "{oops", content_type="application/json")
    assert response.status_code == 400


def test_another_users_private_run_is_404_and_public_is_read_only(
    client: Client, user: object, other_user: object
) -> None:
    run = services.run_create(owner=user, name="mine")
    client.force_login(other_user)
    assert client.get(f"/api/runs/{run.pk}/").status_code == 404
    assert client.post(f"/api/runs/{run.pk}/stop").status_code == 404
    run.visibility = "public"
    run.save(update_fields=["visibility"])
    assert client.get(f"/api/runs/{run.pk}/").status_code == 200
    response = client.post(f"/api/runs/{run.pk}/stop")
    assert response.status_code == 403
    assert "owner" in response.json()["error"]
    assert Run.objects.get(pk=run.pk).status == "queued"


def test_stop_then_resume_through_the_api(
    ada: Client, user: object, django_capture_on_commit_callbacks: object
) -> None:
    run = services.run_create(owner=user, name="mine")
    assert ada.post(f"/api/runs/{run.pk}/stop").json()["status"] == "stopped"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert ada.post(f"/api/runs/{run.pk}/resume").json()["status"] == "queued"
    assert len(callbacks) == 1
    response = ada.post(f"/api/runs/{run.pk}/resume")
    assert response.status_code == 409
    assert "queued" in response.json()["error"]


def test_metrics_and_csv_export(ada: Client, user: object) -> None:
    from tests.trainer.test_services import _metrics

    run = services.run_create(owner=user, name="m")
    _metrics(run, 50)
    body = ada.get(f"/api/runs/{run.pk}/metrics?max_points=10").json()
    assert body["total"] == 50
    assert len(body["points"]) <= 10
    assert {"episode", "lines", "score", "pieces", "loss"} <= set(body["points"][0])
    response = ada.get(f"/api/runs/{run.pk}/export.csv")
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines()[0].startswith("episode,lines,score")
    assert len(text.splitlines()) == 51


def test_openapi_schema_lists_the_contract(client: Client) -> None:
    schema = client.get("/api/openapi.json").json()
    for path in ("/api/status", "/api/runs/", "/api/runs/{run_id}/stop"):
        assert path in schema["paths"]


def test_unknown_api_paths_answer_json_404(ada: Client) -> None:
    response = ada.get("/api/nothing/here")
    assert response.status_code == 404
    assert "no API endpoint" in response.json()["error"]


def test_a_wrong_method_answers_json_405_naming_the_allowed_ones(ada: Client) -> None:
    response = ada.delete("/api/status")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["error"] == "DELETE is not allowed here; use GET"


def test_owners_delete_their_ended_runs_with_their_files_but_not_running_ones(
    ada: Client, user: object, other_user: object, django_capture_on_commit_callbacks: object
) -> None:
    from pathlib import Path

    from trainer.models import Metric

    ended = services.run_create(owner=user, name="old")
    ended.mark_running(worker="w", task_id="t")
    ended.mark_stopped(holder="t")
    Metric.objects.create(
        run=ended,
        episode=1,
        lines=3,
        score=0,
        pieces=9,
        reward=3.0,
        placements_per_second=1.0,
        total_pieces=9,
        wall_time=1.0,
    )
    folder = services.run_media_dir(ended.pk) / "t"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"x")
    running = services.run_create(owner=user, name="busy")
    running.mark_running(worker="w", task_id="u")
    theirs = services.run_create(owner=other_user, name="bob's", visibility="public")

    assert ada.delete(f"/api/runs/{running.pk}/").status_code == 409
    assert ada.delete(f"/api/runs/{theirs.pk}/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):  # files go once rows are gone
        assert ada.delete(f"/api/runs/{ended.pk}/").status_code == 204
    assert not Run.objects.filter(pk=ended.pk).exists()
    assert not Metric.objects.filter(run_id=ended.pk).exists()
    assert not Path(folder).exists()
    assert Run.objects.filter(pk__in=[running.pk, theirs.pk]).count() == 2


def test_the_run_page_deletes_an_ended_run_and_refuses_a_running_one(
    ada: Client, user: object
) -> None:
    ended = services.run_create(owner=user, name="old")
    ended.request_stop()
    running = services.run_create(owner=user, name="busy")
    running.mark_running(worker="w", task_id="u")
    assert b'id="delete-run"' in ada.get(f"/runs/{ended.pk}/").content
    refused = ada.post(f"/runs/{running.pk}/delete/")
    assert refused.status_code == 409 and b"stop it before deleting it" in refused.content
    assert ada.post(f"/runs/{ended.pk}/delete/").status_code == 302
    assert not Run.objects.filter(pk=ended.pk).exists()
