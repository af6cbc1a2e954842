"""daphne's memory while clients download large exports: the issue's target is under 150 MB
of growth while two clients export 2,000,000 metric rows.

    .venv/bin/python bench/export_memory.py [--rows 2000000] [--clients 2]
        [--client-mbps 0] [--without-flow-control] [--data-dir DIR]

Fills a fresh SQLite database in a temporary DATA_DIR (or reuses --data-dir) with two
runs of rows/2 episodes each, starts a private Redis, then has the clients download the
compare export of both runs at once (every row, so each client takes all of them; CSV
and JSON in turn) over plain sockets from a fresh daphne, while a thread samples its
resident set size every 10 ms. `--client-mbps` caps each client's reading speed (0: as
fast as it can), as a slow network would. `--without-flow-control` also measures, before
each export, a daphne serving Django without tetris_site/http_flow.py. Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tetris_site import stack


def fill(rows: int) -> list[int]:
    """Two runs of rows/2 episodes, written by the database itself; their ids."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from trainer import services
    from trainer.models import Metric

    owner = get_user_model().objects.create_user("exporter", password="x")
    runs = [services.run_create(owner=owner, name=f"large {i}") for i in (1, 2)]
    with connection.cursor() as cursor:
        for run in runs:
            cursor.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
                f"INSERT INTO {Metric._meta.db_table} (run_id, episode, lines, score, pieces, "
                "reward, loss, epsilon, placements_per_second, total_pieces, wall_time, extra) "
                "SELECT %s, i, i %% 997, i * 10, i %% 500, i * 0.25, 1.0 / i, 0.05, 5e4, "
                "i * 300, i * 0.1, %s FROM n",
                [rows // 2, run.pk, json.dumps({"charts/lr": 0.001})],
            )
    return [run.pk for run in runs]


def filled_data_dir(data_dir: Path, rows: int, **environment: str) -> stack.Service:
    """Set this process up on a SQLite DATA_DIR with `rows` metric rows in two runs (filled
    once), and its private Redis, which the caller stops; `environment` goes in first."""
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(
        DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="tetris_site.settings", **environment
    )
    import django

    from tetris_site.env import prepare_data_dir

    prepare_data_dir(data_dir)
    redis = stack.start_redis(data_dir, log_path=data_dir / "redis.log")
    os.environ["REDIS_URL"] = redis.url
    django.setup()
    stack.manage("migrate", "--noinput", "-v", "0", env=os.environ)
    from trainer.models import Metric

    if not Metric.objects.exists():
        start = time.perf_counter()
        fill(rows)
        print(f"filled in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    return redis


def session_of(username: str) -> str:
    """A session cookie of the user, stored where daphne reads it."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client.cookies["sessionid"].value


def download(port: int, path: str, session: str, mbps: float, out: dict) -> None:
    """GET `path` over HTTP/1.0, counting the bytes (none are kept); at most `mbps` MB/s."""
    start = time.perf_counter()
    received, first = 0, None
    with socket.create_connection(("127.0.0.1", port), 900) as connection:
        request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nCookie: sessionid={session}\r\n\r\n"
        connection.sendall(request.encode())
        buffer = memoryview(bytearray(1 << 16))
        while size := connection.recv_into(buffer):
            first = first or time.perf_counter() - start
            received += size
            if mbps:
                time.sleep(max(0.0, received / (mbps * 1e6) - (time.perf_counter() - start)))
    out.update(bytes=received, first_byte=first, seconds=time.perf_counter() - start)


def measure(daphne: stack.Service, paths: list[str], session: str, mbps: float) -> dict:
    """Download every path at once; daphne's RSS before and at its highest meanwhile."""
    process = psutil.Process(daphne.process.pid)
    port = int(daphne.url.rsplit(":", 1)[1])
    before = peak = process.memory_info().rss
    results: list[dict] = [{} for _ in paths]
    clients = [
        threading.Thread(target=download, args=(port, path, session, mbps, out))
        for path, out in zip(paths, results, strict=True)
    ]
    for client in clients:
        client.start()
    while any(client.is_alive() for client in clients):
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.01)
    return {"before": before, "peak": peak, "results": results}


# The project's HTTP application, and Django's alone: no flow control (tetris_site/asgi.py).
SERVERS = {"on": stack.ASGI_APPLICATION, "off": "tetris_site.asgi:django_asgi_app"}


def main() -> None:
    """Fill (unless already filled), start Redis and a daphne per export, and measure."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000, help="metric rows in all")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--client-mbps", type=float, default=0.0, help="0: no cap")
    parser.add_argument(
        "--without-flow-control", action="store_true", help="also measure daphne without it"
    )
    parser.add_argument("--data-dir", help="reuse this DATA_DIR (filled once)")
    args = parser.parse_args()

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="export-memory-"))
    redis = filled_data_dir(data_dir, args.rows)
    try:
        from trainer.models import Metric, Run

        run_ids = ",".join(
            str(pk) for pk in Run.objects.order_by("pk").values_list("pk", flat=True)
        )
        rows = Metric.objects.count()
        session = session_of("exporter")
        flows = ("off", "on") if args.without_flow_control else ("on",)
        cap = f"{args.client_mbps:g} MB/s each" if args.client_mbps else "as fast as they read"
        print(f"{rows:,} metric rows in 2 runs, SQLite; {args.clients} clients, {cap}\n")
        print("| export | flow control | clients | MB each | first byte s | seconds "
              "| daphne RSS before MB | growth MB |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for kind in ("csv", "json"):
            for flow in flows:
                path = f"/api/compare/export.{kind}?runs={run_ids}"
                clients = [path] * args.clients
                got = measure_fresh(data_dir, SERVERS[flow], clients, session, args.client_mbps)
                results = got["results"]
                assert all(r["bytes"] > rows * 50 for r in results), results
                print(
                    f"| compare {kind.upper()} | {flow} | {args.clients} "
                    f"| {max(r['bytes'] for r in results) / 1e6:,.0f} "
                    f"| {max(r['first_byte'] for r in results):.2f} "
                    f"| {max(r['seconds'] for r in results):.1f} "
                    f"| {got['before'] / 2**20:.0f} "
                    f"| {(got['peak'] - got['before']) / 2**20:.0f} |",
                    flush=True,
                )
    finally:
        redis.stop(grace=5)


def measure_fresh(
    data_dir: Path, application: str, paths: list[str], session: str, mbps: float
) -> dict:
    """One export measured on a daphne of its own serving `application`: no earlier
    export's heap hides this one's growth."""
    daphne = stack.start_daphne(
        os.environ,
        port=stack.free_port(),
        log_path=data_dir / "daphne.log",
        application=application,
    )
    try:
        # A first signed-in request opens the database and the session: not an export's.
        measure(daphne, ["/api/runs/"], session, 0)
        return measure(daphne, paths, session, mbps)
    finally:
        daphne.stop(grace=5)


if __name__ == "__main__":
    main()
