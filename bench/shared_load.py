"""One web process under a shared installation's worst afternoon, as issue 18 sets it: two
clients export 2,000,000 metric rows while 50 sockets never read a run streaming 60
frames a second. daphne's resident set must grow by less than 150 MB, and a normal viewer
must still get every frame within 1 s.

    .venv/bin/python bench/shared_load.py [--rows 2000000] [--stuck 50] [--data-dir DIR]

A private Redis, one Celery worker training a quick run at 60 frames/s, one daphne. The
metric rows are written by the database itself (bench/export_memory.py's `fill`). The
stuck sockets finish their handshake and never read again, with a 4 KiB receive window.
The viewer is a websockets client that reads everything; a frame's delay is when it
arrived minus the time the worker stamped on it (one machine: one clock). Prints a
Markdown table.
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
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.export_memory import download, filled_data_dir, session_of
from tests.wsclient import never_reading_socket, open_socket
from tetris_site import stack

FRAMES_PER_SECOND = 60


async def watch(
    url: str, path: str, session: str, stop: threading.Event, delays: list[float]
) -> None:
    """A viewer that reads everything: appends each frame's delay, in seconds, as it comes."""
    socket = await open_socket(url, path, session=session)
    try:
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(socket.recv(), 0.5)
            except TimeoutError:
                continue
            message = json.loads(text)
            if message.get("type") == "frame":
                delays.append(time.time() - message["t"])
    finally:
        await socket.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000, help="metric rows to export")
    parser.add_argument("--stuck", type=int, default=50, help="sockets that never read")
    parser.add_argument("--data-dir", help="reuse this DATA_DIR (filled once)")
    args = parser.parse_args()

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="shared-load-"))
    # One account opens every socket and holds the runs: no per-user caps here.
    redis = filled_data_dir(
        data_dir,
        args.rows,
        MAX_SOCKETS_PER_USER="0",
        MAX_ACTIVE_RUNS_PER_USER="0",
        TORCH_THREADS="1",
    )
    services_started: list[stack.Service] = [redis]
    try:
        from trainer import services
        from trainer.models import Run

        exported = ",".join(
            str(pk) for pk in Run.objects.order_by("pk").values_list("pk", flat=True)[:2]
        )
        owner = Run.objects.order_by("pk").first().owner
        session = session_of(owner.get_username())

        worker = stack.start_worker(os.environ, name="load", log_path=data_dir / "worker.log")
        services_started.append(worker)
        daphne = stack.start_daphne(
            os.environ, port=stack.free_port(), log_path=data_dir / "daphne.log"
        )
        services_started.append(daphne)
        live = services.run_create_and_start(
            owner=owner,
            name="streamed",
            config={"frames_per_second": FRAMES_PER_SECOND, "max_minutes": 30},
        )
        while Run.objects.get(pk=live.pk).status != Run.Status.RUNNING:
            time.sleep(0.2)

        process = psutil.Process(daphne.process.pid)
        path = f"/ws/runs/{live.pk}/"
        stop = threading.Event()
        delays: list[float] = []
        viewer = threading.Thread(
            target=lambda: asyncio.run(watch(daphne.url, path, session, stop, delays))
        )
        viewer.start()
        time.sleep(3)  # the viewer's snapshot, the first frames
        before = peak = process.memory_info().rss
        stuck = [never_reading_socket(daphne.url, path, session) for _ in range(args.stuck)]
        port = int(daphne.url.rsplit(":", 1)[1])
        results: list[dict] = [{}, {}]
        export = f"/api/compare/export.csv?runs={exported}"
        clients = [
            threading.Thread(target=download, args=(port, export, session, 0.0, out))
            for out in results
        ]
        started = time.perf_counter()
        for client in clients:
            client.start()
        frames_before = len(delays)
        while any(client.is_alive() for client in clients):
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        during = delays[frames_before : len(delays)]
        stop.set()
        viewer.join()
        ports = {s.getsockname()[1] for s in stuck}
        held = sum(
            1 for c in process.net_connections(kind="tcp") if c.raddr and c.raddr.port in ports
        )
        for s in stuck:
            s.close()

        cores = os.cpu_count()
        print(f"\n{args.rows:,} rows exported by 2 clients at once (compare CSV), "
              f"{args.stuck} sockets that never read, a run at {FRAMES_PER_SECOND} frames/s; "
              f"{cores} cores\n")  # fmt: skip
        print("| figure | value |\n|---|---|")
        print(f"| export: MB each / seconds | {results[0]['bytes'] / 1e6:,.0f} / {seconds:.0f} |")
        grown = (peak - before) / 2**20
        print(f"| daphne RSS before / growth | {before / 2**20:.0f} MB / {grown:.0f} MB |")
        rate = len(during) / seconds
        print(f"| viewer frames during the exports | {len(during):,} ({rate:.1f}/s) |")
        if during:
            ordered = sorted(during)
            p99 = ordered[int(0.99 * (len(ordered) - 1))]
            print(f"| frame delay median / p99 / max | {statistics.median(during):.3f} s / "
                  f"{p99:.3f} s / {max(during):.3f} s |")  # fmt: skip
        print(f"| stuck sockets daphne still holds at the end (the rest it closed) | {held} |")
    finally:
        for service in reversed(services_started):
            service.stop(grace=10)


if __name__ == "__main__":
    main()
