"""Comparing runs: the compare page, the compare API (downsampled curves, access, errors)
and the comparison's CSV and JSON exports, through Django's test client."""

import csv
import io
import json
import math
import os
import random
import time

import pytest
from django.db import connection, transaction
from django.test import Client

from tests.visualizer.test_pages import add_evaluation, page_data
from trainer import services
from trainer.models import Metric, Run
from trainer.selectors import MAX_COMPARED_RUNS, run_metric_points

pytestmark = pytest.mark.django_db

# Episodes a run in the scale tests. Ten times the 1,000 points a curve is cut to is enough
# to prove the cut and the query count; docs/BENCHMARKS.md ("## Compare") times the page
# and the API with COMPARE_EPISODES=100000 (a million rows, half a minute to store).
LONG_RUN_EPISODES = int(os.environ.get("COMPARE_EPISODES", "10000"))

INSERT_COLUMNS = (
    "run_id",
    "episode",
    "lines",
    "score",
    "pieces",
    "reward",
    "loss",
    "epsilon",
    "placements_per_second",
    "total_pieces",
    "wall_time",
    "extra",
)


def store_learning_curve(
    run: Run, episodes: int, *, best: float = 200.0, pace: float = 0.3, seed: int = 0
) -> None:
    """Store `episodes` metric rows of a noisy learning curve, with raw executemany (fast).

    Lines per game climb towards `best`; `pace` sets how soon (a share of the episodes).
    """
    rng = random.Random(seed)
    total_pieces, wall_time, rows = 0, 0.0, []
    for episode in range(1, episodes + 1):
        progress = 1 - math.exp(-episode / (pace * episodes))
        lines = int(best * progress * rng.lognormvariate(0, 0.45))
        pieces = int(lines * 2.5) + 12
        total_pieces += pieces
        wall_time += pieces / 4000 + 0.002
        epsilon = max(0.01, 1 - episode / (0.5 * episodes))
        loss = 2.0 * (1 - progress) + 0.05 * rng.random()
        row = (run.pk, episode, lines, lines * 110, pieces, float(lines), loss, epsilon)
        rows.append((*row, 4000.0, total_pieces, wall_time, "{}"))
    table = Metric._meta.db_table
    placeholders = ", ".join(["%s"] * len(INSERT_COLUMNS))
    sql = f"INSERT INTO {table} ({', '.join(INSERT_COLUMNS)}) VALUES ({placeholders})"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    Run.objects.filter(pk=run.pk).update(
        episodes=episodes, total_pieces=total_pieces, wall_time=wall_time
    )


@pytest.fixture
def ada(client: Client, user: object) -> Client:
    client.force_login(user)
    return client


def compare(client: Client, *runs: Run, max_points: int = 1000) -> object:
    ids = ",".join(str(run.pk) for run in runs)
    return client.get(f"/api/compare?runs={ids}&max_points={max_points}")


# --- the compare API ---


def test_compare_answers_each_run_in_the_order_asked_with_all_three_axes(
    ada: Client, user: object
) -> None:
    first = services.run_create(owner=user, name="first")
    second = services.run_create(owner=user, name="second")
    store_learning_curve(first, 50)
    store_learning_curve(second, 30, seed=1)

    body = compare(ada, second, first).json()

    assert [entry["run"]["id"] for entry in body["runs"]] == [second.pk, first.pk]
    assert [entry["total"] for entry in body["runs"]] == [30, 50]
    points = body["runs"][1]["points"]
    stored = list(Metric.objects.filter(run=first).order_by("episode"))
    assert points["episode"] == [m.episode for m in stored]
    assert points["lines"] == [m.lines for m in stored]
    assert points["total_pieces"] == [m.total_pieces for m in stored]
    assert points["wall_time"] == pytest.approx([m.wall_time for m in stored])


def test_compare_cuts_each_run_to_max_points_keeping_the_extremes_of_lines(
    ada: Client, user: object
) -> None:
    run = services.run_create(owner=user, name="long")
    short = services.run_create(owner=user, name="short")
    store_learning_curve(run, 5000)
    store_learning_curve(short, 40)

    body = compare(ada, run, short, max_points=200).json()

    long_points, short_points = (entry["points"] for entry in body["runs"])
    assert 100 <= len(long_points["episode"]) <= 200
    assert len(short_points["episode"]) == 40  # under the limit: every episode as stored
    assert min(long_points["lines_min"]) == min(m.lines for m in Metric.objects.filter(run=run))
    assert max(long_points["lines_max"]) == max(m.lines for m in Metric.objects.filter(run=run))
    assert long_points["episode"] == sorted(long_points["episode"])
    assert long_points["total_pieces"] == sorted(long_points["total_pieces"])


def test_compared_points_are_the_buckets_of_the_single_run_metrics(
    ada: Client, user: object
) -> None:
    run = services.run_create(owner=user, name="same buckets")
    store_learning_curve(run, 3000)
    other = services.run_create(owner=user, name="other")
    store_learning_curve(other, 700, seed=3)

    points = compare(ada, run, other, max_points=150).json()["runs"][0]["points"]
    single, _ = run_metric_points(run, max_points=150)

    assert points["episode"] == [point["episode"] for point in single]
    assert points["lines"] == pytest.approx([point["lines"] for point in single])
    assert points["lines_max"] == [point["lines_max"] for point in single]


def test_compare_answers_each_runs_evaluations_oldest_first(ada: Client, user: object) -> None:
    first = services.run_create(owner=user, name="first")
    second = services.run_create(owner=user, name="second")
    store_learning_curve(first, 20)
    early = add_evaluation(first, 2000, best=True)
    late = add_evaluation(first, 4000, ci95_high=None, mean_lines=20.0, ended=0)
    other = add_evaluation(second, 3000)

    runs = compare(ada, first, second).json()["runs"]

    assert [e["id"] for e in runs[0]["evaluations"]] == [early.pk, late.pk]
    assert [e["id"] for e in runs[1]["evaluations"]] == [other.pk]
    shown = runs[0]["evaluations"][1]
    assert (shown["total_pieces"], shown["ci95_low"], shown["ci95_high"]) == (4000, 30.0, None)
    assert runs[0]["evaluations"][0]["best"] is True
    assert set(runs[0]) == {"run", "total", "points", "evaluations"}


def test_compare_of_runs_never_evaluated_answers_no_evaluations(ada: Client, user: object) -> None:
    run = services.run_create(owner=user, name="unevaluated")
    assert compare(ada, run).json()["runs"][0]["evaluations"] == []


def test_compare_shows_the_settings_that_differ(ada: Client, user: object) -> None:
    slow = services.run_create(owner=user, name="slow", config={"lr": 0.0001})
    fast = services.run_create(owner=user, name="fast", config={"lr": 0.01})

    rows = {row["field"]: row for row in compare(ada, slow, fast).json()["config"]}

    assert rows["lr"] == {"field": "lr", "values": [0.0001, 0.01], "differs": True}
    assert rows["width"]["differs"] is False
    assert rows["algorithm"]["values"] == ["dqn", "dqn"]


def test_compare_of_runs_without_metrics_answers_empty_columns(ada: Client, user: object) -> None:
    run = services.run_create(owner=user, name="queued")
    body = compare(ada, run).json()
    assert body["runs"][0]["total"] == 0
    assert body["runs"][0]["points"]["episode"] == []


def test_compare_refuses_the_whole_request_if_one_run_is_private_to_someone_else(
    ada: Client, user: object, other_user: object
) -> None:
    mine = services.run_create(owner=user, name="mine")
    public = services.run_create(owner=other_user, name="bobs", visibility="public")
    secret = services.run_create(owner=other_user, name="bobs-secret")
    store_learning_curve(secret, 10)

    assert compare(ada, mine, public).status_code == 200
    for runs in ((mine, secret), (secret,)):
        response = compare(ada, *runs)
        assert response.status_code == 404
        assert response.json() == {"error": f"run {secret.pk} not found"}
        assert "bobs-secret" not in response.content.decode()
    assert ada.get("/api/compare?runs=999999").status_code == 404


@pytest.mark.parametrize(
    "runs",
    ["", ",", "1,x", "-1", "1;2", "1.5", "²", "\u0661", "9" * 40, ",".join(map(str, range(1, 30)))],
)
def test_compare_names_the_runs_field_when_the_list_is_bad(ada: Client, runs: str) -> None:
    response = ada.get("/api/compare", {"runs": runs})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"runs"}


def test_compare_without_runs_names_the_missing_field(ada: Client) -> None:
    response = ada.get("/api/compare")
    assert response.status_code == 400
    assert "runs" in response.json()["errors"]


def test_compare_needs_sign_in(client: Client) -> None:
    assert client.get("/api/compare?runs=1").status_code == 401
    assert client.get("/api/compare/export.csv?runs=1").status_code == 401


def test_compare_is_in_the_openapi_schema(client: Client) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"/api/compare", "/api/compare/export.csv", "/api/compare/export.json"} <= set(paths)


def test_ten_long_runs_answer_with_bounded_points_and_queries(
    ada: Client, user: object, django_assert_max_num_queries: object
) -> None:
    runs = [services.run_create(owner=user, name=f"run {i}") for i in range(10)]
    for index, run in enumerate(runs):
        store_learning_curve(run, LONG_RUN_EPISODES, seed=index)

    started = time.perf_counter()
    # The session, the user, the runs, their spans, one grouped query for every curve and
    # one for every run's evaluations.
    with django_assert_max_num_queries(6):
        response = compare(ada, *runs, max_points=1000)
    seconds = time.perf_counter() - started

    body = response.json()
    assert [entry["total"] for entry in body["runs"]] == [LONG_RUN_EPISODES] * 10
    for entry in body["runs"]:
        assert 500 <= len(entry["points"]["episode"]) <= 1000
        assert entry["points"]["episode"][-1] == LONG_RUN_EPISODES
    # Reported, not asserted: docs/BENCHMARKS.md ("## Compare") has the figures.
    print(
        f"\n/api/compare, 10 runs x {LONG_RUN_EPISODES:,} episodes -> 1000 points each: "
        f"{seconds:.2f} s"
    )
    print(f"response: {len(response.content) / 1e6:.2f} MB")


# --- exports ---


def test_comparison_csv_has_every_row_of_every_run_with_its_run_id(
    ada: Client, user: object, other_user: object
) -> None:
    mine = services.run_create(owner=user, name="mine")
    public = services.run_create(owner=other_user, name="bobs, public", visibility="public")
    store_learning_curve(mine, 30)
    store_learning_curve(public, 20, seed=2)

    response = ada.get(f"/api/compare/export.csv?runs={mine.pk},{public.pk}")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert f"compare-runs-{mine.pk}-{public.pk}.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 50
    assert [row["run_id"] for row in rows] == [str(mine.pk)] * 30 + [str(public.pk)] * 20
    assert rows[30]["run_name"] == "bobs, public"
    assert rows[0]["episode"] == "1" and rows[29]["episode"] == "30"


def test_a_run_name_that_a_spreadsheet_would_run_is_exported_as_plain_text(
    ada: Client, user: object
) -> None:
    names = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "plain"]
    runs = [services.run_create(owner=user, name=name) for name in names]
    for run in runs:
        store_learning_curve(run, 1)
    ids = ",".join(str(run.pk) for run in runs)
    response = ada.get(f"/api/compare/export.csv?runs={ids}")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["run_name"] for row in rows] == ["'" + name for name in names[:4]] + ["plain"]
    assert all(float(row["lines"]) >= 0 for row in rows)  # numbers stay numbers


def test_comparison_json_holds_each_run_and_all_its_rows(ada: Client, user: object) -> None:
    first = services.run_create(owner=user, name="first")
    second = services.run_create(owner=user, name="second")
    store_learning_curve(first, 2500)  # more than one streamed chunk
    store_learning_curve(second, 3, seed=4)

    response = ada.get(f"/api/compare/export.json?runs={first.pk},{second.pk}")

    assert response.status_code == 200
    body = json.loads(b"".join(response.streaming_content))
    assert [entry["run"]["name"] for entry in body["runs"]] == ["first", "second"]
    assert len(body["runs"][0]["metrics"]) == 2500
    assert [m["episode"] for m in body["runs"][1]["metrics"]] == [1, 2, 3]
    stored = Metric.objects.get(run=second, episode=2)
    assert body["runs"][1]["metrics"][1]["lines"] == stored.lines


def test_comparison_exports_refuse_a_hidden_run(
    ada: Client, user: object, other_user: object
) -> None:
    mine = services.run_create(owner=user, name="mine")
    secret = services.run_create(owner=other_user, name="bobs-secret")
    for kind in ("csv", "json"):
        response = ada.get(f"/api/compare/export.{kind}?runs={mine.pk},{secret.pk}")
        assert response.status_code == 404
        assert response.json() == {"error": f"run {secret.pk} not found"}


# --- the compare page ---


def test_compare_page_lists_the_runs_and_highlights_the_settings_that_differ(
    ada: Client, user: object
) -> None:
    slow = services.run_create(owner=user, name="slow", config={"lr": 0.0001})
    fast = services.run_create(owner=user, name="fast", config={"lr": 0.01, "seed": 7})

    response = ada.get(f"/compare/?runs={slow.pk},{fast.pk}")

    assert response.status_code == 200
    body = response.content.decode()
    assert '<tr data-field="lr" class="differs">' in body
    assert '<tr data-field="seed" class="differs">' in body
    assert '<tr data-field="width">' in body
    assert "2 settings differ" in body
    page = page_data(response, "compare-page")
    assert [run["id"] for run in page["runs"]] == [slow.pk, fast.pk]
    assert len({run["color"] for run in page["runs"]}) == 2
    assert page["data_url"].startswith(f"/api/compare?runs={slow.pk}%2C{fast.pk}&max_points=")
    assert f"/api/compare/export.csv?runs={slow.pk}%2C{fast.pk}" in body
    assert 'id="evaluations-chart"' in body and 'class="kept-score"' in body
    assert "/static/js/scores.js" in body


def test_compare_page_is_404_if_any_run_is_someone_elses_private_run(
    ada: Client, user: object, other_user: object
) -> None:
    mine = services.run_create(owner=user, name="mine")
    secret = services.run_create(owner=other_user, name="bobs-secret")
    response = ada.get(f"/compare/?runs={mine.pk},{secret.pk}")
    assert response.status_code == 404
    assert "bobs-secret" not in response.content.decode()


def test_compare_page_explains_a_bad_run_list(ada: Client) -> None:
    for query in ("", "?runs=", "?runs=a,b", f"?runs={','.join(['1'] * 3)}0,x"):
        response = ada.get(f"/compare/{query}")
        assert response.status_code == 400
        assert 'id="compare-error"' in response.content.decode()
    too_many = ",".join(str(i) for i in range(1, MAX_COMPARED_RUNS + 2))
    assert ada.get(f"/compare/?runs={too_many}").status_code == 400


def test_compare_page_sends_anonymous_visitors_to_sign_in(client: Client) -> None:
    response = client.get("/compare/?runs=1,2")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
