"""The admin run list: filters, actions, kept scores, and a query count that does not grow
with runs; each run's evaluations; every evaluation, read-only; deletes, visibility and
config changes through the services."""

import json
from pathlib import Path

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.test import Client

from live.protocol import Envelope
from tests.visualizer.test_pages import add_evaluation, keep_as_best
from trainer import experiments, services
from trainer.models import Checkpoint, Evaluation, Experiment, Metric, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, django_user_model: type) -> Client:
    admin = django_user_model.objects.create_superuser("root", password="pw-for-tests-3")
    client.force_login(admin)
    return client


def _many_runs(owner: object, n: int) -> None:
    Run.objects.bulk_create(
        Run(
            owner=owner,
            name=f"run {i}",
            algorithm="dqn" if i % 2 else "cem",
            config={},
            seed=i,
            status=Run.Status.FINISHED,
            curve=[[j, float(j * i % 50), 1] for j in range(30)],
        )
        for i in range(n)
    )


def test_run_list_query_count_does_not_grow_with_runs(
    staff: Client, user: object, django_assert_max_num_queries: object
) -> None:
    _many_runs(user, 20)
    with django_assert_max_num_queries(12) as few:
        assert staff.get("/admin/trainer/run/").status_code == 200
    _many_runs(user, 200)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = staff.get("/admin/trainer/run/")
    assert b"<svg" in response.content


def test_run_list_filters_and_searches(staff: Client, user: object) -> None:
    _many_runs(user, 4)
    assert b"run 3" in staff.get("/admin/trainer/run/?q=run+3").content
    assert staff.get("/admin/trainer/run/?status__exact=finished&algorithm=cem").status_code == 200


def test_stop_action_and_export(staff: Client, user: object) -> None:
    run = services.run_create(owner=user, name="live")
    response = staff.post(
        "/admin/trainer/run/", {"action": "stop_runs", "_selected_action": [run.pk]}
    )
    assert response.status_code == 302
    assert Run.objects.get(pk=run.pk).status == Run.Status.STOPPED
    response = staff.post(
        "/admin/trainer/run/", {"action": "export_runs", "_selected_action": [run.pk]}
    )
    assert json.loads(b"".join(response.streaming_content))[0]["run"]["name"] == "live"


def test_run_list_shows_each_runs_kept_score_with_its_interval(staff: Client, user: object) -> None:
    keep_as_best(services.run_create(owner=user, name="evaluated"), mean_lines=41.26)
    services.run_create(owner=user, name="never evaluated")
    body = staff.get("/admin/trainer/run/").content.decode()
    assert "Kept policy (best)" in body
    assert "41.3 (95% CI 30.0\N{EN DASH}55.0, 10 games)" in body
    assert '<td class="field-kept_score">\N{EN DASH}</td>' in body


def test_run_page_lists_its_evaluations_read_only(staff: Client, user: object) -> None:
    run = services.run_create(owner=user, name="evaluated")
    keep_as_best(run)
    add_evaluation(run, 90_000, ci95_high=None, mean_lines=300.0, ci95_low=512.0, ended=0)
    add_evaluation(
        run,
        90_000,
        kind=Evaluation.Kind.REQUESTED,
        status=Evaluation.Status.RUNNING,
        games=100,
        games_done=37,
        mean_lines=None,
        ci95_low=None,
        ci95_high=None,
    )
    body = staff.get(f"/admin/trainer/run/{run.pk}/change/").content.decode()
    assert "40.0 (95% CI 30.0\N{EN DASH}55.0, 10 games)" in body  # also the kept score
    assert "≥ 512 (95% lower bound; no game ended before the cap of 10,000 pieces)" in body
    assert "running: 37 of 100 games" in body
    assert 'name="evaluations-TOTAL_FORMS"' in body
    assert 'name="evaluations-0-mean_lines"' not in body  # read-only: no inputs
    assert 'name="best_evaluation"' not in body


def test_evaluations_are_listed_but_never_added_changed_or_deleted(
    staff: Client, user: object, django_assert_max_num_queries: object
) -> None:
    runs = [services.run_create(owner=user, name=f"run {i}") for i in range(3)]
    evaluations = [add_evaluation(run, 1000 * k) for run in runs for k in range(1, 6)]
    with django_assert_max_num_queries(8):
        response = staff.get("/admin/trainer/evaluation/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "run 2" in body and "40.0 (95% CI 30.0\N{EN DASH}55.0, 10 games)" in body
    assert staff.get("/admin/trainer/evaluation/add/").status_code == 403
    page = staff.get(f"/admin/trainer/evaluation/{evaluations[0].pk}/change/")
    assert page.status_code == 200 and 'name="mean_lines"' not in page.content.decode()
    response = staff.post(f"/admin/trainer/evaluation/{evaluations[0].pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Evaluation.objects.count() == len(evaluations)


# --- changes go through the services ---


def with_checkpoint_file(run: Run) -> Path:
    """A checkpoint of the run whose file lies where training writes it."""
    folder = services.run_media_dir(run.pk)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "episode-000000005.pt"
    path.write_bytes(b"weights")
    Checkpoint.objects.create(
        run=run, file=f"runs/{run.pk}/{path.name}", episode=5, total_pieces=50, wall_time=1.0
    )
    return path


def running(run: Run) -> Run:
    """The run, taken by a worker."""
    run.mark_running(worker="worker@host")
    return run


def stopped(run: Run) -> Run:
    """The run, stopped before a worker took it."""
    run.request_stop()
    return run


def messages_of(response: object) -> list[str]:
    """The admin's messages on the page a redirect led to."""
    return [str(message) for message in response.context["messages"]]


def test_deleting_a_running_run_is_refused_and_deletes_nothing(
    staff: Client, user: object, django_capture_on_commit_callbacks: object
) -> None:
    run = running(services.run_create(owner=user, name="training"))
    checkpoint_file = with_checkpoint_file(run)

    with django_capture_on_commit_callbacks(execute=True):  # files go once rows are gone
        response = staff.post(f"/admin/trainer/run/{run.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.redirect_chain[-1][0] == f"/admin/trainer/run/{run.pk}/change/"
    assert messages_of(response) == [
        f"not deleted: run {run.pk} is running: stop it before deleting it"
    ]
    assert Run.objects.filter(pk=run.pk).exists() and checkpoint_file.exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_deleting_a_stopped_run_removes_its_rows_and_its_checkpoint_files(
    staff: Client, user: object, django_capture_on_commit_callbacks: object
) -> None:
    run = stopped(services.run_create(owner=user, name="done with"))
    checkpoint_file = with_checkpoint_file(run)
    add_evaluation(run, 1000)  # the admin never deletes an evaluation on its own

    page = staff.get(f"/admin/trainer/run/{run.pk}/delete/").content.decode()
    assert "Are you sure" in page and "(0 metric rows)" in page

    with django_capture_on_commit_callbacks(execute=True):  # files go once rows are gone
        response = staff.post(f"/admin/trainer/run/{run.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.redirect_chain[-1][0] == "/admin/trainer/run/"
    assert not Run.objects.filter(pk=run.pk).exists()
    assert not checkpoint_file.exists() and not checkpoint_file.parent.exists()
    assert LogEntry.objects.get(action_flag=DELETION).object_id == str(run.pk)


def test_bulk_delete_deletes_the_stopped_runs_and_refuses_the_running_one(
    staff: Client, user: object, django_capture_on_commit_callbacks: object
) -> None:
    busy = running(services.run_create(owner=user, name="busy"))
    idle = stopped(services.run_create(owner=user, name="idle"))
    busy_file, idle_file = with_checkpoint_file(busy), with_checkpoint_file(idle)
    chosen = {"action": "delete_selected", "_selected_action": [busy.pk, idle.pk]}

    page = staff.post("/admin/trainer/run/", chosen).content.decode()
    assert "Are you sure" in page and "Metric rows: 0" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post("/admin/trainer/run/", {**chosen, "post": "yes"}, follow=True)

    assert sorted(messages_of(response)) == [
        "deleted 1 run(s)",
        f"run {busy.pk} not deleted: run {busy.pk} is running: stop it before deleting it",
    ]
    assert list(Run.objects.values_list("pk", flat=True)) == [busy.pk]
    assert busy_file.exists() and not idle_file.exists()
    assert [entry.object_id for entry in LogEntry.objects.filter(action_flag=DELETION)] == [
        str(idle.pk)
    ]


def test_the_delete_page_counts_metric_rows_instead_of_listing_each(
    staff: Client, user: object, django_assert_max_num_queries: object
) -> None:
    run = stopped(services.run_create(owner=user, name="long"))
    Metric.objects.bulk_create(
        Metric(
            run=run,
            episode=episode,
            lines=1,
            score=1,
            pieces=1,
            reward=0.0,
            placements_per_second=1.0,
            total_pieces=episode,
            wall_time=1.0,
        )
        for episode in range(1, 3001)
    )
    with django_assert_max_num_queries(20):
        body = staff.get(f"/admin/trainer/run/{run.pk}/delete/").content.decode()
    assert "(3,000 metric rows)" in body and "Metric object" not in body


def change_form(run: Run, **changes: object) -> dict:
    """What the run's change page posts: its fields, changed, and empty inlines."""
    data = {"name": run.name, "visibility": run.visibility, **changes}
    if "config" in data:
        data["config"] = json.dumps(data["config"])
    for inline in ("checkpoints", "best_games", "evaluations"):
        data.update({f"{inline}-TOTAL_FORMS": "0", f"{inline}-INITIAL_FORMS": "0"})
    return data


def test_a_config_change_is_validated_like_a_new_runs(staff: Client, user: object) -> None:
    run = stopped(services.run_create(owner=user, name="to extend"))
    url = f"/admin/trainer/run/{run.pk}/change/"
    bad = {**run.config, "max_episodes": -5, "lr": "fast"}

    response = staff.post(url, change_form(run, config=bad))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["config"]
    assert any(error.startswith("max_episodes: must be") for error in errors)
    assert any(error.startswith("lr: ") for error in errors)
    run.refresh_from_db()
    assert run.config["max_episodes"] != -5

    response = staff.post(url, change_form(run, config={"max_episodes": 500, "seed": 7}))

    assert response.status_code == 302
    run.refresh_from_db()
    assert run.config["max_episodes"] == 500
    assert run.config["frames_per_second"] == 15.0  # every field, as TrainConfig fills it in
    assert run.seed == 7 and run.algorithm == run.config["algorithm"]
    assert run.status == Run.Status.STOPPED


def test_a_config_change_that_could_not_resume_from_the_checkpoints_is_refused(
    staff: Client, user: object
) -> None:
    run = stopped(services.run_create(owner=user, name="has a checkpoint"))
    with_checkpoint_file(run)
    url = f"/admin/trainer/run/{run.pk}/change/"
    wider = {**run.config, "hidden_size": run.config["hidden_size"] * 2}

    response = staff.post(url, change_form(run, config=wider))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["config"]
    assert any(e.startswith("hidden_size: must stay") for e in errors), errors
    response = staff.post(url, change_form(run, config={**run.config, "lr": 0.0005}))
    assert response.status_code == 302  # what does not shape the saved state may change


def test_a_running_runs_config_cannot_change(staff: Client, user: object) -> None:
    run = running(services.run_create(owner=user, name="training"))
    url = f"/admin/trainer/run/{run.pk}/change/"
    page = staff.get(url).content.decode()
    assert 'name="config"' not in page

    response = staff.post(url, change_form(run, name="renamed", config={"max_episodes": 5}))

    assert response.status_code == 302
    run.refresh_from_db()
    assert run.name == "renamed" and run.config["max_episodes"] != 5
    assert run.status == Run.Status.RUNNING and run.worker == "worker@host"


def test_making_a_run_private_tells_its_viewers_access_changed(
    staff: Client, user: object, published: list[tuple[str, Envelope]]
) -> None:
    run = services.run_create(owner=user, name="was public", visibility="public")

    response = staff.post(
        f"/admin/trainer/run/{run.pk}/change/", change_form(run, visibility="private")
    )

    assert response.status_code == 302
    assert Run.objects.get(pk=run.pk).visibility == "private"
    access = [group for group, envelope in published if envelope.kind == "access_changed"]
    assert f"run.{run.pk}" in access


def test_runs_are_not_added_in_the_admin(staff: Client) -> None:
    assert staff.get("/admin/trainer/run/add/").status_code == 403


def test_experiments_are_listed_shown_and_stopped_in_the_admin(staff: Client, user: object) -> None:
    experiment = experiments.experiment_create(
        owner=user, name="lr sweep", config={"max_minutes": 1.0}, grid={"lr": [0.001, 0.0003]}
    )
    experiments.experiment_advance(experiment_id=experiment.pk)
    listing = staff.get("/admin/trainer/experiment/")
    assert listing.status_code == 200 and b"lr sweep" in listing.content
    page = staff.get(f"/admin/trainer/experiment/{experiment.pk}/change/")
    assert page.status_code == 200 and b"lr" in page.content
    response = staff.post(
        "/admin/trainer/experiment/",
        {"action": "stop_experiments", "_selected_action": [experiment.pk]},
    )
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.STOPPED
    assert not Run.objects.filter(experiment=experiment, status__in=Run.ACTIVE).exists()
