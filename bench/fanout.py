"""Live-viewer fan-out on the real stack: frame latency, delivery, drops, CPU, and what
streaming costs training.

    .venv/bin/python bench/fanout.py [--viewers 1,100,300] [--seconds 15] [--fps 30]
        [--speed-cycles 20] [--only ours,prepared,asgi,textbook]

For each setup it starts a private Redis, one daphne and one Celery worker, starts a
`quick` dqn run that publishes frames at --fps, and opens N WebSocket viewers in this
process for --seconds each. Latency is the viewer's receipt time minus the worker's
publish time `t`; a gap in `seq` is a lost frame, and boards between the snapshot's and
the first frame are skipped by the latest-only policy while the viewer loads. Socket open
and snapshot times run from the start of connecting (all N at once, handshakes of this
process included). Training cost: the run's placements per second (read from a probe
viewer's frames) and the worker's CPU over 3 s windows with and without 100 more viewers,
alternated --speed-cycles times and compared pair by pair. Those 100 stand for browsers
on other machines: a process at the lowest priority takes their bytes off the sockets
undecoded, a few times a second (see `drain`). Setups:
- ours: the bridge (one event loop per worker process, each message encoded once and
  PUBLISHed once, sends never block training) and the stream hub (one subscription per
  daphne, each message read and framed once and written straight to every viewer's
  socket);
- ours with SOCKET_WRITES=prepared: the same, but each viewer's copy goes through
  autobahn's public `sendPreparedMessage` (the fast path's fallback);
- ours with SOCKET_WRITES=asgi: each viewer's copy goes down Channels' and daphne's ASGI
  send path (the setup before direct writes);
- textbook: the classic Redis channel layer and `async_to_sync(group_send)` per frame,
  to consumers that each join the run's Channels group (bench/textbook_asgi.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from tetris_site import stack

SETUPS = {
    "ours": {
        "title": "ours (bridge + stream hub + direct socket writes)",
        "env": {"CHANNEL_LAYER": "pubsub", "SOCKET_WRITES": "direct"},
        "include": None,
        "application": None,
    },
    "prepared": {
        "title": "ours, fast path off (SOCKET_WRITES=prepared)",
        "env": {"CHANNEL_LAYER": "pubsub", "SOCKET_WRITES": "prepared"},
        "include": None,
        "application": None,
    },
    "asgi": {
        "title": "ours, ASGI sends (SOCKET_WRITES=asgi)",
        "env": {"CHANNEL_LAYER": "pubsub", "SOCKET_WRITES": "asgi"},
        "include": None,
        "application": None,
    },
    "textbook": {
        "title": "textbook (core layer + async_to_sync per frame)",
        "env": {"CHANNEL_LAYER": "core"},
        "include": "bench.textbook_publisher",
        "application": "bench.textbook_asgi:application",
    },
}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of values, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# A frame starts like this (live.protocol.Frame's fields in order); parsing the two numbers
# costs a viewer far less than decoding 300 bytes of JSON 30 times a second.
FRAME_HEAD = re.compile(r'\{"type":"frame","seq":(\d+),"t":([0-9.e+-]+),')
SNAPSHOT_FRAME_SEQ = re.compile(r'"frame":\{"type":"frame","seq":(\d+),')


async def watch(
    url: str, path: str, session: str, seconds: float, out: dict, settled_at: float = 0.0
) -> None:
    """One viewer: connect, then record each frame's latency and seq until time is up.

    Latencies after the monotonic time `settled_at` also go to `out["steady"]`.
    """
    from websockets.exceptions import ConnectionClosed

    from tests.wsclient import open_socket

    opened = time.monotonic()
    # No keepalive pings: a starved benchmark process must not close its own sockets.
    socket = await open_socket(url, path, session=session, ping_interval=None)
    out.setdefault("open_ms", []).append(1000 * (time.monotonic() - opened))
    latencies, seqs = out.setdefault("latency", []), []
    steady = out.setdefault("steady", [])
    snapshot_seq = None
    try:
        async with asyncio.timeout(seconds):  # one timer, not a task per message
            while True:
                text = await socket.recv()
                now = time.time()
                if text.startswith('{"type":"snapshot"'):
                    out.setdefault("snapshot_ms", []).append(1000 * (time.monotonic() - opened))
                    if found := SNAPSHOT_FRAME_SEQ.search(text):
                        snapshot_seq = int(found[1])
                    continue
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
    if seqs and snapshot_seq is not None:  # boards superseded while the snapshot was read
        out.setdefault("skipped", []).append(max(0, seqs[0] - snapshot_seq - 1))
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


# Training speed. It varies by 10 % from one 3 s window to the next with nothing else
# running (the games' phases and the two dqn threads taking turns at the GIL), and drifts
# over minutes (the same seeded run, trained again and again, took from 1,950 to 2,870
# placements/s), so the cost of watching is read from short windows, with and without the
# viewers, alternated many times and compared pairwise. The speed comes from the frames a
# probe viewer receives: the dqn games play in lockstep, one placement each per round, so
# the streamed game's placements per second times `num_envs` is the run's. The worker's
# CPU in the same windows varies by well under 1 %: the training is CPU-bound, so it
# shows the same cost with far less noise.
NUM_ENVS = 8  # the quick preset's lockstep games
WINDOW_SECONDS = 3.0


class Probe:
    """One viewer on its own thread and event loop: every frame's (t, episode, pieces)."""

    def __init__(self, url: str, path: str, session: str) -> None:
        self.frames: list[tuple[float, int, int]] = []
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._watch(url, path, session),))
        self._thread.start()

    async def _watch(self, url: str, path: str, session: str) -> None:
        from websockets.exceptions import ConnectionClosed

        from tests.wsclient import open_socket

        socket = await open_socket(url, path, session=session, ping_interval=None)
        while not self._stop.is_set():
            try:
                text = await asyncio.wait_for(socket.recv(), 0.5)
            except TimeoutError:
                continue
            except ConnectionClosed:  # the server gave up on it (the textbook's 1011): again
                self.reconnects += 1
                socket = await open_socket(url, path, session=session, ping_interval=None)
                continue
            if text.startswith('{"type":"frame"'):
                frame = json.loads(text)
                self.frames.append((frame["t"], frame["episode"], frame["pieces"]))
        await socket.close()

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join()

    def placements_per_second(self, t0: float, t1: float) -> float:
        """The run's placements per second between worker times t0 and t1."""
        frames = [f for f in self.frames if t0 <= f[0] <= t1]
        pieces = seconds = 0.0
        for (ta, ea, pa), (tb, eb, pb) in itertools.pairwise(frames):
            if ea == eb:  # not across the end of a game
                pieces, seconds = pieces + pb - pa, seconds + tb - ta
        return NUM_ENVS * pieces / seconds if seconds else float("nan")


def drain_viewers(url: str, path: str, session: str, viewers: int) -> subprocess.Popen:
    """`viewers` stand-ins for browsers on other machines, in a process of their own.

    It prints a line once every socket has begun to receive its snapshot, then keeps the
    sockets until killed (see `drain`).
    """
    args = [sys.executable, __file__, "--drain", url, path, session, str(viewers)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, preexec_fn=lowest_priority)


def lowest_priority() -> None:
    """Run this process only when nothing else on the machine wants the CPU."""
    os.nice(19)
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


# How often the stand-ins take what arrived off their sockets: 6 frames of 400 bytes each
# fit easily in a socket's receive buffer, so daphne's writes never wait for them.
DRAIN_EVERY_SECONDS = 0.2


def drain(url: str, path: str, session: str, viewers: int) -> None:
    """Open `viewers` WebSocket connections and take their bytes off, undecoded, until killed.

    Browsers watching from other machines would cost this one nothing; here their bytes
    still cross loopback TCP, but the reading side costs little: a plain blocking socket
    per viewer, read a few times a second at the lowest priority (about 1 % of a core for
    100 viewers at 30 frames/s, against 7 % reading each frame as it comes and 9-10 % for
    the `websockets` client that decodes them). daphne's keepalive pings go unanswered,
    which is fine for the few seconds a window lasts.
    """
    host, port = urlsplit(url).hostname, urlsplit(url).port
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: {url}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: {key}\r\n"
        f"Cookie: sessionid={session}\r\n\r\n"
    )
    sockets = []
    for _ in range(viewers):
        sock = socket.create_connection((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(request.replace("{key}", key).encode())
        sockets.append(sock)
    responses = {sock: b"" for sock in sockets}  # until the 101 response is whole
    waiting = set(sockets)  # until the first bytes of the snapshot
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while waiting:
            for key, _ in selector.select():
                sock = key.fileobj
                data = sock.recv(65536)
                if not data:
                    raise SystemExit("daphne closed a viewer's socket")
                if sock in responses:
                    head, upgraded, data = (responses[sock] + data).partition(b"\r\n\r\n")
                    if not upgraded:
                        responses[sock] = head
                        continue
                    if not head.startswith(b"HTTP/1.1 101"):
                        raise SystemExit(f"the WebSocket handshake failed: {head[:80]!r}")
                    del responses[sock]
                if data and sock in waiting:  # the first frame: the snapshot, not a close
                    if data[0] & 0x0F == 0x8:
                        raise SystemExit("daphne refused a viewer")
                    waiting.remove(sock)
        print("ready", flush=True)
        while True:
            for key, _ in selector.select():
                if not key.fileobj.recv(1 << 20):
                    raise SystemExit("daphne closed a viewer's socket")
            time.sleep(DRAIN_EVERY_SECONDS)


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system CPU time used so far by the processes."""
    return sum(p.cpu_times().user + p.cpu_times().system for p in processes)


def watched_and_alone(
    probe: Probe,
    daphne: stack.Service,
    processes: dict[str, list[psutil.Process]],
    path: str,
    session: str,
    cycles: int,
) -> list[dict]:
    """Training with and without 100 viewers, in adjacent windows, `cycles` times.

    Each window gives the run's placements per second and the CPU (percent of a core) of
    each group of `processes` and of the viewers' stand-ins. The order alternates, so a
    steady drift favours neither. The viewers' connections, snapshots and closing fall
    outside the windows.
    """
    pairs = []
    for cycle in range(cycles):
        pair = {}
        for watched in (True, False) if cycle % 2 == 0 else (False, True):
            load = None
            if watched:
                load = drain_viewers(daphne.url, path, session, 100)
                if load.stdout.readline() != "ready\n":  # every socket is receiving its snapshot
                    raise RuntimeError(f"the 100 viewers failed: exit status {load.wait()}")
            time.sleep(1.0)  # past the snapshots, or past the last closing
            groups = {**processes, "stand-ins": [psutil.Process(load.pid)] if load else []}
            t0, before = time.time(), {k: cpu_seconds(g) for k, g in groups.items()}
            time.sleep(WINDOW_SECONDS)
            t1, after = time.time(), {k: cpu_seconds(g) for k, g in groups.items()}
            window = {k: 100 * (after[k] - before[k]) / (t1 - t0) for k in groups}
            window["placements/s"] = probe.placements_per_second(t0, t1)
            pair["watched" if watched else "alone"] = window
            if load is not None:
                if load.poll() is not None:
                    raise RuntimeError(f"the 100 viewers stopped: exit status {load.returncode}")
                load.terminate()
                load.wait()
        pairs.append(pair)
    return pairs


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
        daphne = stack.start_daphne(
            env,
            port=stack.free_port(),
            log_path=data_dir / "daphne.log",
            application=setup["application"] or stack.ASGI_APPLICATION,
        )
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
                    "skipped": sum(loop_result.get("skipped", [])) / viewers,
                    "open_p99_ms": percentile(loop_result.get("open_ms", []), 99),
                    "snapshot_p50_ms": percentile(loop_result.get("snapshot_ms", []), 50),
                    "snapshot_p99_ms": percentile(loop_result.get("snapshot_ms", []), 99),
                    "closed": closed,
                    "daphne_cpu": cpu["daphne"],
                    "worker_cpu": (w1 - w0) / elapsed * 100,
                    "client_cpu": (c1 - c0) / elapsed * 100,
                }
            )
            print(name, rows[-1], file=sys.stderr, flush=True)
        probe = Probe(daphne.url, path, session)
        try:
            processes = {"worker CPU %": worker_procs, "daphne CPU %": [daphne_proc]}
            speed = watched_and_alone(probe, daphne, processes, path, session, args.speed_cycles)
        finally:
            probe.close()
        print(name, speed, file=sys.stderr, flush=True)
        return {"rows": rows, "speed": speed}
    finally:
        for service in reversed(services):
            service.stop(grace=10)


def create_run(fps: float) -> tuple[int, str]:
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
        },
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


def main() -> None:
    """Measure every setup and print Markdown tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", default="1,100,300")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--speed-cycles", type=int, default=20, help="training-speed pairs")
    parser.add_argument("--only", help=f"comma-separated setups of {', '.join(SETUPS)}")
    parser.add_argument("--drain", nargs=4, help=argparse.SUPPRESS)  # see drain_viewers
    args = parser.parse_args()
    if args.drain:
        url, path, session, viewers = args.drain
        drain(url, path, session, int(viewers))
        return
    args.viewers = [int(v) for v in args.viewers.split(",")]

    data_dir = Path(tempfile.mkdtemp(prefix="fanout-"))
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="tetris_site.settings")
    os.environ.update(MAX_ACTIVE_RUNS_PER_USER="0", MAX_SOCKETS_PER_USER="0")  # one account
    redis = stack.start_redis(data_dir, log_path=data_dir / "redis.log")
    os.environ["REDIS_URL"] = redis.url
    import django

    from tetris_site.env import prepare_data_dir

    prepare_data_dir(Path(os.environ["DATA_DIR"]))
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
        "| boards skipped while loading, per viewer | socket open p99 ms "
        "| snapshot p50 / p99 ms "
        "| sockets closed | daphne CPU % | worker CPU % | viewers' client CPU % |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        for r in result["rows"]:
            print(
                f"| {name} | {r['viewers']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['steady_p99_ms']:.1f} | "
                f"{r['fps_per_viewer']:.1f} | {r['lost_pct']:.2f} | {r['skipped']:.1f} | "
                f"{r['open_p99_ms']:.0f} | "
                f"{r['snapshot_p50_ms']:.0f} / {r['snapshot_p99_ms']:.0f} | {r['closed']} | "
                f"{r['daphne_cpu']:.0f} | {r['worker_cpu']:.0f} | {r['client_cpu']:.0f} |"
            )
    print(
        f"\n| setup | measure (over {WINDOW_SECONDS:g} s windows) | alone | with 100 viewers "
        "| change, median of pairs | change, mean ± SE | pairs lower / higher |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        pairs = result["speed"]
        if not pairs:  # --speed-cycles 0
            continue
        # Training's measures change by a share of themselves; daphne's, by points of a core.
        for measure, unit in (("placements/s", "%"), ("worker CPU %", "%"), ("daphne CPU %", "")):
            rows = [(p["watched"][measure], p["alone"][measure]) for p in pairs]
            # A window without a probe frame has no placements/s: that pair is left out.
            rows = [(w, a) for w, a in rows if not (math.isnan(w) or math.isnan(a))]
            changes = [100 * (w / a - 1) if unit else w - a for w, a in rows]
            spread = statistics.stdev(changes) / len(changes) ** 0.5 if len(changes) > 1 else 0
            print(
                f"| {name} | {measure} | {statistics.median(a for _, a in rows):,.1f} "
                f"| {statistics.median(w for w, _ in rows):,.1f} "
                f"| {statistics.median(changes):+.1f}{unit} "
                f"| {statistics.mean(changes):+.1f} ± {spread:.1f}{unit} "
                f"| {sum(c < 0 for c in changes)} / {sum(c > 0 for c in changes)} |"
            )
        stand_ins = statistics.median(p["watched"]["stand-ins"] for p in pairs)
        print(f"| {name} | the 100 stand-ins' CPU % | | {stand_ins:.1f} | | | |")


if __name__ == "__main__":
    main()
