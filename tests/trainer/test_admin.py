"""The admin run list: filters, actions, and a query count that does not grow with runs."""

import pytest
from django.test import Client

from trainer import services
from trainer.models import Run

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
