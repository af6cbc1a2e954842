"""The experiments API: the contract's body and answer, a message per bad field, access."""

import json

import pytest
from django.test import Client

from trainer import experiments
from trainer.models import Experiment, Run

pytestmark = pytest.mark.django_db

BODY = {
    "name": "lr sweep",
    "preset": "quick",
    "config": {"max_minutes": 1.0, "frames_per_second": 0},
    "grid": {"lr": [0.001, 0.0003]},
    "seeds": 2,
    "parallel": 2,
}


@pytest.fixture
def ada(client: Client, user: object) -> Client:
    client.force_login(user)
    return client


def post_json(client: Client, url: str, body: object) -> object:
    return client.post(url, json.dumps(body), content_type="application/json")


def test_create_answers_201_with_the_experiment_and_its_first_runs(
    ada: Client, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_json(ada, "/api/experiments/", BODY)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == Experiment.objects.get().pk
    assert body["status"] == "running" and body["trials"] == 2 and body["seeds"] == 2
    assert len(callbacks) == 1  # the scheduler's first step, once committed
    callbacks[0]()  # (the runs' own enqueues are left uncalled: no broker here)
    answer = ada.get(f"/api/experiments/{body['id']}/").json()
    (configuration,) = answer["configurations"]
    assert len(configuration["runs"]) == 2
    assert set(configuration) >= {"config", "runs", "iqm", "ci95_low", "ci95_high", "curve"}
    assert configuration["iqm"] is None  # nothing evaluated yet
    assert Run.objects.filter(experiment_id=body["id"]).count() == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seedz": 3}, "seedz"),
        ({"config": {"max_minutes": 1.0, "lrr": 0.1}}, "config.lrr"),
        ({"space": {"lr": {"low": 0.01, "high": 0.01}}, "sampler": "random"}, "space.lr"),
        ({"config": {"max_minutes": 0}}, "config.max_minutes"),
        ({"sampler": "random", "trials": 1000}, "trials"),
        ({"parallel": "two"}, "parallel"),
    ],
)
def test_bad_input_is_400_with_a_message_per_field_and_creates_nothing(
    ada: Client, change: dict, field: str
) -> None:
    response = post_json(ada, "/api/experiments/", {**BODY, **change})
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert not Experiment.objects.exists() and not Run.objects.exists()


def test_another_users_private_experiment_is_not_found(
    client: Client, user: object, other_user: object
) -> None:
    experiment = experiments.experiment_create(owner=user, **BODY)
    client.force_login(other_user)
    assert client.get(f"/api/experiments/{experiment.pk}/").status_code == 404
    assert client.post(f"/api/experiments/{experiment.pk}/stop").status_code == 404
    assert client.get("/api/experiments/").json()["count"] == 0
    Experiment.objects.filter(pk=experiment.pk).update(visibility="public")
    assert client.get(f"/api/experiments/{experiment.pk}/").status_code == 200
    assert client.post(f"/api/experiments/{experiment.pk}/stop").status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.RUNNING


def test_stop_answers_the_stopped_experiment(ada: Client, user: object) -> None:
    experiment = experiments.experiment_create(owner=user, **BODY)
    response = ada.post(f"/api/experiments/{experiment.pk}/stop")
    assert response.status_code == 200 and response.json()["status"] == "stopped"
    listed = ada.get("/api/experiments/").json()
    assert listed["count"] == 1 and listed["items"][0]["status"] == "stopped"


def test_the_schema_lists_the_experiment_routes(ada: Client) -> None:
    paths = ada.get("/api/openapi.json").json()["paths"]
    assert {"/api/experiments/", "/api/experiments/{experiment_id}/"} <= set(paths)
    assert "/api/experiments/{experiment_id}/stop" in paths


def test_the_owner_makes_an_experiment_and_its_runs_private_and_viewers_are_cut_off(
    ada: Client,
    user: object,
    other_user: object,
    published: list,
    django_capture_on_commit_callbacks: object,
) -> None:
    experiment = experiments.experiment_create(owner=user, **{**BODY, "visibility": "public"})
    experiments.experiment_advance(experiment_id=experiment.pk)
    other = Client()
    other.force_login(other_user)
    url = f"/api/experiments/{experiment.pk}/"
    assert (
        other.patch(url, {"visibility": "private"}, content_type="application/json").status_code
        == 403
    )
    with django_capture_on_commit_callbacks(execute=True):  # told once committed
        response = ada.patch(url, {"visibility": "private"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["visibility"] == "private"
    assert set(Run.objects.filter(experiment=experiment).values_list("visibility", flat=True)) == {
        "private"
    }
    assert other.get(url).status_code == 404
    groups = {group for group, envelope in published if envelope.kind == "access_changed"}
    assert f"experiment.{experiment.pk}" in groups
    assert (
        ada.patch(url, {"visibility": "secret"}, content_type="application/json").status_code == 400
    )
