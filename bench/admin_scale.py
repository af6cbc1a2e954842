"""Admin and run-list response times with 10,000 runs and 5,000,000 metric rows.

    .venv/bin/python bench/admin_scale.py [--runs 10000] [--metric-rows 5000000]

Fills a fresh SQLite database in a temporary DATA_DIR (or reuses --data-dir), then
requests each page repeatedly through Django's test client, signed in as staff, and
prints p50/p95 response times and query counts as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def fill(runs: int, metric_rows: int, metric_runs: int) -> None:
    """Insert users, runs and metric rows with raw executemany (fast)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from trainer.models import Metric, Run

    user_model = get_user_model()
    users = [user_model.objects.create_user(f"user{i}", password="x") for i in range(20)]
    user_model.objects.create_superuser("staff", password="x")
    rng = random.Random(1)
    now = timezone.now()
    statuses = list(Run.Status.values)
    Run.objects.bulk_create(
        (
            Run(
                owner=users[i % len(users)],
                name=f"run {i}",
                algorithm=rng.choice(["dqn", "cem"]),
                preset="quick",
                config={"lr": 0.001, "seed": i},
                seed=i,
                status=rng.choice(statuses),
                created_at=now,
                episodes=rng.randint(0, 10**5),
                best_lines=rng.randint(0, 10**6),
                recent_mean_lines=rng.random() * 1000,
                wall_time=rng.random() * 3600,
                curve=[[j, rng.random() * 100, 1] for j in range(64)],
            )
            for i in range(runs)
        ),
        batch_size=1000,
    )
    run_ids = list(Run.objects.order_by("pk").values_list("pk", flat=True)[:metric_runs])
    per_run = metric_rows // len(run_ids)
    table = Metric._meta.db_table
    columns = (
        "run_id, episode, lines, score, pieces, reward, loss, epsilon, "
        "placements_per_second, total_pieces, wall_time, extra"
    )
    sql = f"INSERT INTO {table} ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    with transaction.atomic(), connection.cursor() as cursor:
        for run_id in run_ids:
            cursor.executemany(
                sql.replace("?", "%s"),
                [
                    (
                        run_id,
                        e,
                        e % 997,
                        e * 10,
                        e % 500,
                        1.0,
                        0.1,
                        0.0,
                        5e4,
                        e * 300,
                        e * 0.1,
                        "{}",
                    )
                    for e in range(1, per_run + 1)
                ],
            )


def measure(client: object, url: str, repeats: int) -> tuple[float, float, int]:
    """p50 and p95 milliseconds, and the query count, of GET url."""
    from django.db import connection

    client.get(url)  # warm caches
    times = []
    queries = []

    # An execute wrapper counts every query; the debug query log is reset per request.
    def count(execute: object, sql: str, *args: object) -> object:
        queries.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(count):
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    for _ in range(repeats):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], len(queries)


def main() -> None:
    """Fill (unless already filled) and measure."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--metric-rows", type=int, default=5_000_000)
    parser.add_argument("--metric-runs", type=int, default=500, help="runs that hold the rows")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--data-dir", help="reuse this DATA_DIR (filled once)")
    args = parser.parse_args()

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="admin-scale-"))
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tetris_site.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    import django

    from tetris_site.env import prepare_data_dir

    prepare_data_dir(Path(os.environ["DATA_DIR"]))
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from trainer.models import Metric, Run

    setup_test_environment()
    call_command("migrate", verbosity=0)
    if not Run.objects.exists():
        start = time.perf_counter()
        fill(args.runs, args.metric_rows, args.metric_runs)
        print(f"filled in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    big_run = Metric.objects.values_list("run_id", flat=True).first()
    client = Client()
    client.force_login(get_user_model().objects.get(username="staff"))
    pages = {
        "admin run list": "/admin/trainer/run/",
        "admin, filtered by status": "/admin/trainer/run/?status__exact=running",
        "admin, search by name": "/admin/trainer/run/?q=run+123",
        "admin run page": f"/admin/trainer/run/{big_run}/change/",
        "run list page /": "/",
        "API /api/runs/": "/api/runs/",
        f"API metrics, {Metric.objects.filter(run_id=big_run).count():,} rows -> 1500": (
            f"/api/runs/{big_run}/metrics?max_points=1500"
        ),
    }
    print(f"{Run.objects.count():,} runs, {Metric.objects.count():,} metric rows, SQLite\n")
    print("| page | p50 ms | p95 ms | queries |")
    print("|---|---:|---:|---:|")
    for label, url in pages.items():
        p50, p95, queries = measure(client, url, args.repeats)
        print(f"| {label} | {p50:.0f} | {p95:.0f} | {queries} |")


if __name__ == "__main__":
    main()
