"""One access policy everywhere: owner controls, others see public runs read-only, staff
see and stop everything, anonymous users see nothing."""

import json

import pytest
from django.test import Client

from tests.trained_runs import finished_cem_run
from trainer import selectors, services
from trainer.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_run(user: object) -> Run:
    return services.run_create(owner=user, name="ada's private run")


def test_owner_can_make_a_run_public_and_others_then_see_it_read_only(
    client: Client, user: object, other_user: object, private_run: Run
) -> None:
    client.force_login(other_user)
    assert client.get(f"/api/runs/{private_run.pk}/").status_code == 404
    assert client.get(f"/runs/{private_run.pk}/").status_code == 404
    assert all(r["id"] != private_run.pk for r in client.get("/api/runs/").json()["items"])
    patch = json.dumps({"visibility": "public"})
    denied = client.patch(f"/api/runs/{private_run.pk}/", patch, content_type="application/json")
    assert denied.status_code == 404

    owner = Client()
    owner.force_login(user)
    made_public = owner.patch(
        f"/api/runs/{private_run.pk}/", patch, content_type="application/json"
    )
    assert made_public.json()["visibility"] == "public"

    assert client.get(f"/api/runs/{private_run.pk}/").status_code == 200
    assert client.get(f"/api/runs/{private_run.pk}/metrics").status_code == 200
    assert client.post(f"/api/runs/{private_run.pk}/stop").status_code == 403
    assert client.post(f"/api/runs/{private_run.pk}/resume").status_code == 403
    back = client.patch(
        f"/api/runs/{private_run.pk}/",
        json.dumps({"visibility": "private"}),
        content_type="application/json",
    )
    assert back.status_code == 403


def test_staff_see_and_stop_everything_but_do_not_resume(
    client: Client, django_user_model: type, private_run: Run
) -> None:
    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get(f"/api/runs/{private_run.pk}/").status_code == 200
    assert client.post(f"/api/runs/{private_run.pk}/stop").json()["status"] == "stopped"
    assert client.post(f"/api/runs/{private_run.pk}/resume").status_code == 403


def test_anonymous_sees_nothing(client: Client, private_run: Run) -> None:
    assert client.get("/api/runs/").status_code == 401
    assert client.get(f"/api/runs/{private_run.pk}/export.csv").status_code == 401
    assert client.get(f"/runs/{private_run.pk}/").status_code == 302


def test_checkpoint_download_follows_the_policy(
    client: Client, user: object, other_user: object
) -> None:
    # A checkpoint that exists, so a 404 can only be the access check's.
    run = finished_cem_run(user, name="ada's, with checkpoints")
    checkpoint = selectors.latest_checkpoint(run)
    url = f"/runs/{run.pk}/checkpoints/{checkpoint.pk}/download"
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content)

    client.force_login(other_user)
    assert client.get(url).status_code == 404
    services.run_set_visibility(run=run, user=user, visibility="public")
    assert client.get(url).status_code == 200  # others may download a public run's
    other_run = services.run_create(owner=other_user, name="bob's")
    wrong_run = f"/runs/{other_run.pk}/checkpoints/{checkpoint.pk}/download"
    assert client.get(wrong_run).status_code == 404  # a checkpoint under another run
