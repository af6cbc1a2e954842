"""The admin run list: filters, actions, kept scores, and a query count that does not grow
with runs; each run's evaluations; every evaluation, read-only."""

import pytest
from django.test import Client

from tests.visualizer.test_pages import add_evaluation, keep_as_best
from trainer import services
from trainer.models import Evaluation, Run

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
    assert response.json()[0]["run"]["name"] == "live"


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
