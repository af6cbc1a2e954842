"""Soak the real stack: concurrent runs, viewers, API pollers, and a Redis and a daphne
restart in the middle. Reports what was served and whether anything acknowledged is
missing.

    .venv/bin/python bench/soak.py [--minutes 10] [--viewers 100] [--runs 4] [--workers 2]

It starts a private Redis, one daphne and --workers Celery workers (each training two
runs at once), keeps --runs runs training (each with a budget of a third of the soak, so
runs complete and new ones are queued), connects --viewers reconnecting WebSocket viewers
spread over the runs, polls /api/status and /api/runs/ from 4 clients, restarts Redis at
40% of the time and daphne at 60%. Then it stops everything and checks every run's
metric rows against the episodes its worker reported: no gap, no duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tetris_site import stack


class Soak:
    """The processes, the load, and the counters."""

    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.args = args
        self.data_dir = data_dir
        self.env = dict(os.environ)
        self.stop = threading.Event()
        self.responses: Counter[str] = Counter()
        self.failures: list[tuple[float, str]] = []
        self.latency_ms: list[float] = []
        self.reconnects = 0
        self.back_after: dict[str, float] = {}
        self.outage: dict[str, float] = {}
        self.daphne_port = stack.free_port()

    # --- processes ---
    def start(self) -> None:
        """Redis, migrations, workers and daphne."""
        self.redis = stack.start_redis(self.data_dir, log_path=self.data_dir / "redis.log")
        self.env["REDIS_URL"] = os.environ["REDIS_URL"] = self.redis.url
        stack.manage("migrate", "--noinput", "-v", "0", env=self.env)
        self.workers = [
            stack.start_worker(
                self.env, name=f"soak{i}", concurrency=2, log_path=self.data_dir / f"w{i}.log"
            )
            for i in range(self.args.workers)
        ]
        self.daphne = self._start_daphne()

    def _start_daphne(self) -> stack.Service:
        return stack.start_daphne(
            self.env, port=self.daphne_port, log_path=self.data_dir / "daphne.log"
        )

    def restart_redis(self) -> None:
        """Stop Redis, wait 3 s, start it again on the same port and folder."""
        self.outage["redis"] = time.time()
        self.redis.stop(grace=10)
        time.sleep(3)
        self.redis = stack.start_redis(
            self.data_dir, port=self.redis.extra["port"], log_path=self.data_dir / "redis.log"
        )
        self.back_after["redis"] = time.time()

    def restart_daphne(self) -> None:
        """Stop daphne (as a redeploy does) and start it again on the same port."""
        self.outage["daphne"] = time.time()
        self.daphne.stop(grace=10)
        self.daphne = self._start_daphne()
        self.back_after["daphne"] = time.time()

    def shutdown(self) -> None:
        """Stop every process."""
        for service in [self.daphne, *self.workers, self.redis]:
            service.stop(grace=20)

    # --- load ---
    async def viewer(self, path: str, session: str) -> None:
        """A viewer that reconnects with backoff, as the browser does."""
        from tests.wsclient import open_socket

        url, delay = f"http://127.0.0.1:{self.daphne_port}", 0.2
        while not self.stop.is_set():
            try:
                socket = await open_socket(url, path, session=session)
            except Exception:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.reconnects += 1
            delay = 0.2
            try:
                while not self.stop.is_set():
                    try:
                        text = await asyncio.wait_for(socket.recv(), 0.5)
                    except TimeoutError:
                        continue
                    if '"type":"frame"' in text[:20]:
                        self.latency_ms.append((time.time() - json.loads(text)["t"]) * 1000)
            except Exception:
                await asyncio.sleep(delay)
            finally:
                await socket.close()

    def poller(self, session: str, csrf: str) -> None:
        """An API client polling status and the run list."""
        opener = urllib.request.build_opener()
        opener.addheaders = [("Cookie", f"sessionid={session}; csrftoken={csrf}")]
        paths = ["/api/status", "/api/runs/"]
        i = 0
        while not self.stop.is_set():
            url = f"http://127.0.0.1:{self.daphne_port}{paths[i % 2]}"
            i += 1
            try:
                with opener.open(url, timeout=5) as response:
                    self.responses[str(response.status)] += 1
            except urllib.error.HTTPError as error:
                self.responses[str(error.code)] += 1
                self.failures.append((time.time(), str(error.code)))
            except OSError:
                self.responses["no answer"] += 1
                self.failures.append((time.time(), "no answer"))
            time.sleep(0.2)


def run_soak(args: argparse.Namespace) -> dict:
    """Run the soak and return its figures."""
    data_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="tetris_site.settings")
    # One account holds every run and viewer here: no per-user caps.
    os.environ.update(MAX_ACTIVE_RUNS_PER_USER="0", MAX_SOCKETS_PER_USER="0")
    soak = Soak(args, data_dir)
    soak.start()
    import django

    from tetris_site.env import prepare_data_dir

    prepare_data_dir(Path(os.environ["DATA_DIR"]))
    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from trainer import services
    from trainer.models import Run

    user = get_user_model().objects.create_user("soak", password="soak-pass-1")
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    budget = args.minutes / 3
    config = {"frames_per_second": 15, "max_minutes": budget, "checkpoint_every_s": 20}

    def keep_runs_going() -> None:
        while not soak.stop.is_set():
            active = Run.objects.filter(status__in=Run.ACTIVE).count()
            for _ in range(args.runs - active):
                services.run_create_and_start(owner=user, name="soak", config=config)
            soak.stop.wait(2)

    threading.Thread(target=keep_runs_going, daemon=True).start()
    time.sleep(5)
    pollers = [threading.Thread(target=soak.poller, args=(session, "x")) for _ in range(4)]
    for thread in pollers:
        thread.start()

    run_ids = list(Run.objects.filter(status__in=Run.ACTIVE).values_list("pk", flat=True))

    async def load() -> None:
        viewers = [
            asyncio.create_task(soak.viewer(f"/ws/runs/{run_ids[i % len(run_ids)]}/", session))
            for i in range(args.viewers)
        ]
        start, total = time.monotonic(), args.minutes * 60
        for fraction, restart in ((0.4, soak.restart_redis), (0.6, soak.restart_daphne)):
            await asyncio.sleep(max(0.0, start + fraction * total - time.monotonic()))
            await asyncio.to_thread(restart)
        await asyncio.sleep(max(0.0, start + total - time.monotonic()))
        soak.stop.set()
        await asyncio.gather(*viewers)

    try:
        asyncio.run(load())
        for thread in pollers:
            thread.join()
        for run in Run.objects.filter(status__in=Run.ACTIVE):
            services.run_stop(run=run, user=user)
        deadline = time.monotonic() + 60
        while Run.objects.filter(status__in=Run.ACTIVE).exists() and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        soak.shutdown()
    return report(soak, Run)


def report(soak: Soak, run_model: type) -> dict:
    """Rows written against rows expected, per run, and the load's figures."""
    from django.db.models import Count, Max

    runs = run_model.objects.annotate(rows=Count("metrics"), last=Max("metrics__episode"))
    expected = sum(run.episodes for run in runs)
    written = sum(run.rows for run in runs)
    gaps = [run.pk for run in runs if run.rows != (run.last or 0)]
    served = sum(soak.responses.values())

    def during_restart(t: float) -> bool:
        # From the moment a process is stopped until 5 s after it is back.
        return any(
            soak.outage[name] <= t <= soak.back_after.get(name, t) + 5 for name in soak.outage
        )

    planned = sum(1 for t, _ in soak.failures if during_restart(t))
    errors = len(soak.failures) - planned
    return {
        "minutes": soak.args.minutes,
        "runs": runs.count(),
        "runs_completed": runs.filter(status="finished").count(),
        "runs_by_status": dict(Counter(run.status for run in runs)),
        "requests": served,
        "responses": dict(soak.responses),
        "failed_during_planned_restarts": planned,
        "error_rate_pct_outside_restarts": 100 * errors / served if served else 0.0,
        "frames_received": len(soak.latency_ms),
        "frame_latency_p50_ms": statistics.median(soak.latency_ms) if soak.latency_ms else None,
        "frame_latency_p99_ms": (
            sorted(soak.latency_ms)[int(0.99 * (len(soak.latency_ms) - 1))]
            if soak.latency_ms
            else None
        ),
        "viewer_connections": soak.reconnects,
        "metric_rows_expected": expected,
        "metric_rows_written": written,
        "runs_with_gaps_or_duplicates": gaps,
    }


def main() -> None:
    """Run and print the figures as JSON and a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    result = run_soak(parser.parse_args())
    print(json.dumps(result, indent=2))
    print("\n| figure | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
