"""Live-viewer fan-out on the real stack: frame latency, delivery, drops, CPU, and what
streaming costs training.

    .venv/bin/python bench/fanout.py [--viewers 1,100,300] [--seconds 15] [--fps 30]

For each setup it starts a private Redis, one daphne and one Celery worker, starts a
`quick` dqn run that publishes frames at --fps, and opens N WebSocket viewers in this
process for --seconds each. Latency is the viewer's receipt time minus the worker's
publish time `t`; a gap in `seq` is a lost frame. Training speed is measured on the same
seeded run trained again and again (the same games, the same work), alone and watched by
100 viewers (in a process of their own, at normal priority and then niced, so that their
clients, which in real use are browsers on other machines, take no CPU from the server),
alternated --pps-rounds times: placements per second (all its games) over the same span
of episodes, read from its metric rows. Setups:
- ours: the bridge (one event loop per worker process, each message encoded once and
  PUBLISHed once, sends never block training) and the stream hub (one subscription per
  daphne, each message read and framed once and written straight to every viewer's
  socket);
- ours with DIRECT_SOCKET_WRITES=0: the same, but each viewer's copy goes down Channels'
  and daphne's ASGI send path (the setup before direct writes);
- textbook: the classic Redis channel layer and `async_to_sync(group_send)` per frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from tetris_site import stack

SETUPS = {
    "ours": {
        "title": "ours (bridge + stream hub + direct socket writes)",
        "env": {"CHANNEL_LAYER": "pubsub"},
        "include": None,
    },
    "asgi": {
        "title": "ours, ASGI sends (DIRECT_SOCKET_WRITES=0)",
        "env": {"CHANNEL_LAYER": "pubsub", "DIRECT_SOCKET_WRITES": "0"},
        "include": None,
    },
    "textbook": {
        "title": "textbook (core layer + async_to_sync per frame)",
        "env": {"CHANNEL_LAYER": "core"},
        "include": "bench.textbook_publisher",
    },
}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of values, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# A frame starts like this (bridge.encode keeps the payload's order); parsing the two numbers
# costs a viewer far less than decoding 300 bytes of JSON 30 times a second.
FRAME_HEAD = re.compile(r'\{"type":"frame","seq":(\d+),"t":([0-9.e+-]+),')


async def watch(
    url: str, path: str, session: str, seconds: float, out: dict, settled_at: float = 0.0
) -> None:
    """One viewer: connect, then record each frame's latency and seq until time is up.

    Latencies after the monotonic time `settled_at` also go to `out["steady"]`.
    """
    from websockets.exceptions import ConnectionClosed

    from tests.wsclient import open_socket

    # No keepalive pings: a starved benchmark process must not close its own sockets.
    socket = await open_socket(url, path, session=session, ping_interval=None)
    latencies, seqs = out.setdefault("latency", []), []
    steady = out.setdefault("steady", [])
    try:
        async with asyncio.timeout(seconds):  # one timer, not a task per message
            while True:
                text = await socket.recv()
                now = time.time()
                if head := FRAME_HEAD.match(text):
                    seq, t = int(head[1]), float(head[2])
                elif '"type":"frame"' in text[:20]:
                    frame = json.loads(text)
                    seq, t = frame["seq"], frame["t"]
                else:
                    continue
                latencies.append((now - t) * 1000)
                if time.monotonic() >= settled_at:
                    steady.append(latencies[-1])
                seqs.append(seq)
    except TimeoutError:
        pass
    except ConnectionClosed:
        out["closed"] = out.get("closed", 0) + 1
    finally:
        await socket.close()
    out.setdefault("frames", []).append(len(seqs))
    out.setdefault("lost", []).append(sum(b - a - 1 for a, b in itertools.pairwise(seqs)))


# Opening 300 sockets at once makes daphne build 300 snapshots (up to 1,500 metric points
# each) within a second or two; latencies after this many seconds are the steady state.
SETTLE_SECONDS = 5.0


async def fan_out(url: str, path: str, session: str, viewers: int, seconds: float) -> dict:
    """Open `viewers` sockets at once and measure them for `seconds`."""
    out: dict = {}
    settled_at = time.monotonic() + SETTLE_SECONDS
    await asyncio.gather(
        *(watch(url, path, session, seconds, out, settled_at) for _ in range(viewers))
    )
    return out


def cpu_percent(processes: list[psutil.Process], seconds: float) -> float:
    """CPU used by the processes over the next `seconds`, in percent of one core."""
    before = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
    time.sleep(seconds)
    after = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
    return (after - before) / seconds * 100


def start_viewers(
    url: str, path: str, session: str, viewers: int, seconds: float, nice: int
) -> subprocess.Popen:
    """`viewers` sockets for `seconds` in a process of their own, at niceness `nice`."""
    args = [sys.executable, __file__, "--load", url, path, session, str(viewers), str(seconds)]
    return subprocess.Popen(args, preexec_fn=lambda: os.nice(nice))


# Training speed: the same seeded run, trained again and again, alone or watched. A dqn
# run is deterministic for its seed, so every run does exactly the same work, and its
# speed differs only by what else the machine is doing; the speed of one live run, read
# over a few seconds, swings by 10-20 % with the games it happens to play.
SPEED_SEED = 11
WARMUP_SECONDS = 5.0  # past the worker's start of the run, the viewers' connections and
# their snapshots


def metric_rows(run_id: int) -> list[tuple[int, int, float]]:
    """The run's (episode, placements so far, training seconds) rows, in order."""
    from trainer.models import Metric

    rows = Metric.objects.filter(run_id=run_id).order_by("episode")
    return list(rows.values_list("episode", "total_pieces", "wall_time"))


def speed_run(
    fps: float, seconds: float, daphne: stack.Service, nice: int | None, span: dict
) -> float:
    """Train the seeded run (watched by 100 viewers at niceness `nice`, unless None) and
    return its placements per second from episode span["first"] to span["last"].

    The first call finds the span (the episodes at WARMUP_SECONDS and `seconds` later) and
    stops its run there; later runs end at the span's last episode by themselves.
    """
    run_id, session = create_run(fps, seed=SPEED_SEED, max_episodes=span.get("last", 0))
    wait_running(run_id)
    load = None
    if nice is not None:
        load = start_viewers(daphne.url, f"/ws/runs/{run_id}/", session, 100, 3600, nice)
    try:
        if not span:
            while not (rows := metric_rows(run_id)) or rows[-1][2] < WARMUP_SECONDS + seconds:
                time.sleep(0.5)
            span["first"] = next(e for e, _, wall in rows if wall >= WARMUP_SECONDS)
            span["last"] = next(e for e, _, wall in rows if wall >= WARMUP_SECONDS + seconds)
            stop_run(run_id)
        wait_ended(run_id)
    finally:
        if load is not None:
            load.terminate()
            load.wait()
    rows = {e: (pieces, wall) for e, pieces, wall in metric_rows(run_id)}
    (p0, w0), (p1, w1) = rows[span["first"]], rows[span["last"]]
    # The same seed must have played the same games: else the runs are not comparable.
    work = (p0, p1)
    if span.setdefault("work", work) != work:
        print(f"warning: run {run_id} placed {work}, the first {span['work']}", file=sys.stderr)
    return (p1 - p0) / (w1 - w0)


# Training speed is measured alone, with 100 viewers whose clients run at normal priority,
# and with 100 viewers whose clients are niced (as browsers on other machines would, they
# then take no CPU from the server's processes): the server's own cost of streaming.
LOADS = {"alone": None, "100 viewers": 0, "100 viewers, clients niced": 19}


def measure_setup(name: str, setup: dict, args: argparse.Namespace) -> dict:
    """Start daphne and a worker for one setup (on the shared Redis) and measure them."""
    env = {**os.environ, **setup["env"]}
    services: list[stack.Service] = []
    data_dir = Path(env["DATA_DIR"])
    try:
        extra = ["--include", setup["include"]] if setup["include"] else []
        worker = stack.start_worker(
            env, name="bench", log_path=data_dir / "worker.log", extra_args=extra
        )
        services.append(worker)
        daphne = stack.start_daphne(env, port=stack.free_port(), log_path=data_dir / "daphne.log")
        services.append(daphne)
        run_id, session = create_run(args.fps)
        wait_running(run_id)
        path = f"/ws/runs/{run_id}/"
        daphne_proc = psutil.Process(daphne.process.pid)
        worker_procs = [psutil.Process(worker.process.pid)]
        worker_procs += worker_procs[0].children(recursive=True)
        time.sleep(3)  # past numba compilation and the first games
        rows = []
        for viewers in args.viewers:
            cpu: dict = {}

            def sample_cpu(cpu: dict = cpu) -> None:
                time.sleep(2)  # after the viewers connected
                cpu["daphne"] = cpu_percent([daphne_proc], args.seconds - 4)

            sampler = threading.Thread(target=sample_cpu)
            sampler.start()
            w0 = sum(p.cpu_times().user + p.cpu_times().system for p in worker_procs)
            c0 = sum(psutil.Process().cpu_times()[:2])
            t0 = time.monotonic()
            loop_result = asyncio.run(fan_out(daphne.url, path, session, viewers, args.seconds))
            w1 = sum(p.cpu_times().user + p.cpu_times().system for p in worker_procs)
            c1 = sum(psutil.Process().cpu_times()[:2])
            sampler.join()
            elapsed = time.monotonic() - t0
            closed = loop_result.get("closed", 0)
            frames = loop_result.get("frames", [0])
            lost = loop_result.get("lost", [0])
            latency = loop_result.get("latency", [])
            delivered = sum(frames) + sum(lost)
            rows.append(
                {
                    "viewers": viewers,
                    "p50_ms": percentile(latency, 50),
                    "p99_ms": percentile(latency, 99),
                    "steady_p99_ms": percentile(loop_result.get("steady", []), 99),
                    "fps_per_viewer": statistics.median(frames) / args.seconds,
                    "lost_pct": 100 * sum(lost) / delivered if delivered else float("nan"),
                    "closed": closed,
                    "daphne_cpu": cpu["daphne"],
                    "worker_cpu": (w1 - w0) / elapsed * 100,
                    "client_cpu": (c1 - c0) / elapsed * 100,
                }
            )
            print(name, rows[-1], file=sys.stderr, flush=True)
        stop_run(run_id)
        wait_ended(run_id)
        pps: dict[str, list[float]] = {name: [] for name in LOADS}
        span: dict = {}
        for _ in range(args.pps_rounds):
            for name, nice in LOADS.items():
                pps[name].append(speed_run(args.fps, args.seconds, daphne, nice, span))
        print(name, pps, file=sys.stderr, flush=True)
        return {"rows": rows, "pps": pps}
    finally:
        for service in reversed(services):
            service.stop(grace=10)


def create_run(fps: float, *, seed: int | None = None, max_episodes: int = 0) -> tuple[int, str]:
    """A user, their session, and a queued quick run that streams frames at `fps`."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from trainer import services

    user, _ = get_user_model().objects.get_or_create(username="bench")
    run = services.run_create_and_start(
        owner=user,
        name="fanout",
        # Training games of at most 2,000 pieces end every second or so, and each ending
        # stores the run's placements so far: what the training-cost measure reads.
        config={
            "frames_per_second": fps,
            "max_minutes": 30,
            "piece_cap": 2000,
            "max_episodes": max_episodes,
        },
        seed=seed,
    )
    client = Client()
    client.force_login(user)
    return run.pk, client.cookies["sessionid"].value


def wait_running(run_id: int, timeout: float = 180) -> None:
    """Block until the worker has started the run."""
    from trainer.models import Run

    deadline = time.monotonic() + timeout
    while Run.objects.values_list("status", flat=True).get(pk=run_id) != "running":
        if time.monotonic() > deadline:
            raise RuntimeError("the run did not start")
        time.sleep(0.5)


def stop_run(run_id: int) -> None:
    """Ask the worker to stop the run."""
    from trainer import services
    from trainer.models import Run

    run = Run.objects.get(pk=run_id)
    services.run_stop(run=run, user=run.owner)


def wait_ended(run_id: int, timeout: float = 120) -> None:
    """Block until the run has stopped, finished or failed."""
    from trainer.models import Run

    deadline = time.monotonic() + timeout
    while Run.objects.values_list("status", flat=True).get(pk=run_id) not in (
        Run.Status.STOPPED,
        Run.Status.FINISHED,
        Run.Status.FAILED,
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the run did not end")
        time.sleep(0.5)


def main() -> None:
    """Measure every setup and print Markdown tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", default="1,100,300")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--pps-rounds", type=int, default=3, help="training-speed rounds")
    parser.add_argument("--only", help=f"comma-separated setups of {', '.join(SETUPS)}")
    parser.add_argument("--load", nargs=5, help=argparse.SUPPRESS)  # see start_viewers
    args = parser.parse_args()
    if args.load:
        url, path, session, viewers, seconds = args.load
        asyncio.run(fan_out(url, path, session, int(viewers), float(seconds)))
        return
    args.viewers = [int(v) for v in args.viewers.split(",")]

    data_dir = Path(tempfile.mkdtemp(prefix="fanout-"))
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="tetris_site.settings")
    redis = stack.start_redis(data_dir, log_path=data_dir / "redis.log")
    os.environ["REDIS_URL"] = redis.url
    import django

    django.setup()
    results = {}
    try:
        stack.manage("migrate", "--noinput", "-v", "0", env=os.environ)
        for key, setup in SETUPS.items():
            if not args.only or key in args.only.split(","):
                results[setup["title"]] = measure_setup(setup["title"], setup, args)
    finally:
        redis.stop(grace=5)

    print(f"\n{args.fps:g} frames/s published, {args.seconds:g} s per measurement\n")
    print(
        "| setup | viewers | p50 ms | p99 ms | p99 ms after the first "
        f"{SETTLE_SECONDS:g} s | frames/s per viewer | lost % "
        "| sockets closed | daphne CPU % | worker CPU % | viewers' client CPU % |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        for r in result["rows"]:
            print(
                f"| {name} | {r['viewers']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['steady_p99_ms']:.1f} | "
                f"{r['fps_per_viewer']:.1f} | {r['lost_pct']:.2f} | {r['closed']} | "
                f"{r['daphne_cpu']:.0f} | {r['worker_cpu']:.0f} | {r['client_cpu']:.0f} |"
            )
    print(
        "\n| setup | training placements/s alone (median) | with 100 viewers | change "
        "| with 100 viewers, clients niced | change |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        pps = result["pps"]
        alone, watched, niced = (statistics.median(pps[load]) for load in LOADS)
        print(
            f"| {name} | {alone:,.0f} | {watched:,.0f} "
            f"| {training_cost(pps['alone'], pps['100 viewers'])} "
            f"| {niced:,.0f} | {training_cost(pps['alone'], pps['100 viewers, clients niced'])} |"
        )
    print(
        "\nchange: the median over rounds of each round's speed with viewers against its own "
        "speed alone (the rounds alternate, so slow drift in the training's speed cancels)"
    )


def training_cost(alone: list[float], watched: list[float]) -> str:
    """The median of the rounds' changes in speed, as a signed percentage."""
    changes = [100 * (w / a - 1) for a, w in zip(alone, watched, strict=True)]
    return f"{statistics.median(changes):+.1f}%" if changes else "n/a"


if __name__ == "__main__":
    main()
