"""`make run`'s launcher: it serves, keeps its processes up, keeps its files private, and
Ctrl-C or a closed terminal leaves nothing behind."""

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import redis

from tetris_site import liveness, stack

pytestmark = pytest.mark.stack


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


@dataclass
class Launcher:
    """`python -m tetris_site.stack run` in a child process, its output in a file."""

    process: subprocess.Popen
    port: int
    data_dir: Path
    log_path: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def manage(self, *args: str) -> str:
        """Run a manage.py command against the launcher's data, as a user would."""
        command = [sys.executable, "manage.py", *args]
        result = subprocess.run(
            command, cwd=stack.BASE_DIR, env=self.env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def run_row(self, run_id: int) -> tuple[str, str]:
        """The run's status and error, read from the launcher's SQLite file."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "db.sqlite3", timeout=10)) as db:
            query = "SELECT status, error FROM trainer_run WHERE id = ?"
            return db.execute(query, (run_id,)).fetchone()

    def stop(self, signum: int) -> list[psutil.Process]:
        """Send `signum`, wait for the launcher to exit; return the children it had."""
        children = self.children() if self.process.poll() is None else []
        self.process.send_signal(signum)
        self.process.wait(90)
        return children


def start_launcher(tmp_path: Path, timeout: float = 120, **settings: str) -> Launcher:
    """Start the launcher as `make run` does, on a free port and a fresh data folder."""
    port = stack.free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(DATA_DIR=str(data_dir), PORT=str(port), TORCH_THREADS="1", **settings)
    log_path = tmp_path / "launcher.log"
    with open(log_path, "wb") as log:  # a file: a pipe nobody reads would block the workers
        process = subprocess.Popen(
            [sys.executable, "-m", "tetris_site.stack", "run"],
            cwd=stack.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            umask=0o022,  # what a shell gives it: the launcher must make its files private
        )
    launcher = Launcher(process, port, data_dir, log_path, env)
    deadline = time.monotonic() + timeout
    while "is running at" not in launcher.output():
        if process.poll() is not None or time.monotonic() > deadline:
            launcher.stop(signal.SIGINT)
            raise AssertionError(f"the launcher did not start:\n{launcher.output()}")
        time.sleep(0.2)
    return launcher


def assert_stopped_cleanly(launcher: Launcher, children: list[psutil.Process]) -> None:
    """No process the launcher started is left, and its port is free again."""
    assert children
    alive = []
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
    assert not alive, alive
    assert launcher.process.returncode == 0, launcher.output()
    with socket.socket() as sock:
        # As a new daphne would: connections the old one closed may linger in TIME_WAIT,
        # but nothing may still listen there.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", launcher.port))
        sock.listen()


def _training_worker(launcher: Launcher) -> list[psutil.Process]:
    # The worker's main process and its pool (forked, so with the same command line).
    found = []
    for process in launcher.children():
        with contextlib.suppress(psutil.NoSuchProcess):  # one that ended meanwhile
            if "worker1@%h" in process.cmdline():
                found.append(process)
    return found


# A queued run for the training worker: a user, then the run, checkpointed every second.
CREATE_RUN = """
from django.contrib.auth import get_user_model
from trainer import services
owner = get_user_model().objects.create_user("ada", password="pw-for-tests-1")
config = {"checkpoint_every_s": 1, "frames_per_second": 0, "max_minutes": 5}
print(services.run_create_and_start(owner=owner, name="lost", config=config).pk)
"""


def _wait_for(
    condition: Callable[[], object], timeout: float, what: str, launcher: Launcher
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {timeout}s:\n{launcher.output()}"
        time.sleep(0.5)


def test_launcher_serves_privately_restarts_a_killed_worker_and_a_hangup_stops_it_all(
    tmp_path: Path,
) -> None:
    # One launcher for all of it: starting the stack is most of what such a test costs.
    # The heartbeat is stamped every 5 s: 8 s without one is a lost worker; sweep each second.
    launcher = start_launcher(tmp_path, RUN_STALE_SECONDS="8", SWEEP_SECONDS="1")
    try:
        assert f"{launcher.url}/" in launcher.output()
        status = _get_json(f"{launcher.url}/api/status")
        assert status["workers"] >= 1
        assert status["redis"] is True
        assert len(launcher.children()) >= 3  # redis, daphne, worker (and its pool)
        redis_url = urlsplit((launcher.data_dir / "redis.url").read_text())
        assert redis_url.port != 6379 and redis_url.password
        # Nothing the stack wrote (database, secret key, Redis's password and data) is
        # readable by another account.
        paths = [launcher.data_dir, *launcher.data_dir.rglob("*")]
        loose = {str(p): oct(p.stat().st_mode) for p in paths if p.stat().st_mode & 0o077}
        assert not loose
        assert any(p.name == "db.sqlite3" for p in paths)

        run_id = int(launcher.manage("shell", "-c", CREATE_RUN).split()[-1])
        _wait_for(lambda: launcher.run_row(run_id)[0] == "running", 60, "running run", launcher)
        client = redis.Redis.from_url((launcher.data_dir / "redis.url").read_text())
        hostname = f"worker1@{socket.gethostname()}"
        victims = _training_worker(launcher)
        assert victims
        for process in victims:  # as the kernel's out-of-memory killer would
            process.kill()
        psutil.wait_procs(victims, timeout=10)
        killed_at = time.time()  # any beat after this is a new worker's

        def worker_back() -> bool:
            # The web answers all along.
            assert _get_json(f"{launcher.url}/api/status")["redis"] is True
            workers = liveness.alive_workers(client)
            return any(w["hostname"] == hostname and w["t"] > killed_at for w in workers)

        _wait_for(worker_back, 60, "new training worker", launcher)
        assert {p.pid for p in _training_worker(launcher)}.isdisjoint(p.pid for p in victims)
        assert "died (killed by SIGKILL); starting it again in 1 s" in launcher.output()

        # The run the dead worker held is failed as lost, and resumes on the new worker.
        _wait_for(lambda: launcher.run_row(run_id)[0] == "failed", 30, "failed run", launcher)
        assert launcher.run_row(run_id)[1].startswith("worker lost")
        launcher.manage("resume", str(run_id))
        _wait_for(lambda: launcher.run_row(run_id)[0] == "running", 60, "resumed run", launcher)
        assert launcher.process.poll() is None
    finally:
        # The terminal closing: the same clean stop as Ctrl-C, no orphan holding the port.
        children = launcher.stop(signal.SIGHUP)
    assert_stopped_cleanly(launcher, children)
    assert not (launcher.data_dir / "redis.url").exists()
    assert any((launcher.data_dir / "redis").glob("appendonly*"))
    # Ctrl-C and `kill` take the path the hangup took.
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= set(stack.STOP_SIGNALS)


class _Restarts:
    """A restart function for the supervisor that runs `commands` in turn and records when."""

    def __init__(self, *commands: str) -> None:
        self.commands = list(commands)
        self.times: list[float] = []

    def __call__(self) -> stack.Service:
        self.times.append(time.monotonic())
        command = self.commands.pop(0) if len(self.commands) > 1 else self.commands[0]
        return stack._spawn("test", ["sh", "-c", command], os.environ, None)

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def _supervise(restarts: _Restarts, starts: int) -> None:
    supervisor = stack.Supervisor()
    supervisor.add(restarts(), restarts)
    deadline = time.monotonic() + 20
    try:
        while len(restarts.times) < starts and time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.01)
    finally:
        supervisor.stop()


def test_supervisor_starts_a_dead_process_again_after_growing_delays_up_to_a_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack, "RESTART_FIRST_DELAY_SECONDS", 0.1)
    monkeypatch.setattr(stack, "RESTART_MAX_DELAY_SECONDS", 0.4)
    restarts = _Restarts("exit 3")
    _supervise(restarts, starts=6)
    gaps = restarts.gaps()
    assert len(gaps) == 5
    for gap, delay in zip(gaps, [0.1, 0.2, 0.4, 0.4, 0.4], strict=True):
        assert delay <= gap < delay + 0.3, gaps


def test_supervisor_forgives_a_process_that_stayed_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack, "RESTART_FIRST_DELAY_SECONDS", 0.1)
    monkeypatch.setattr(stack, "RESTART_STABLE_SECONDS", 0.5)
    # Three quick deaths (the next delay would be 0.8 s), then one after 0.6 s of work.
    restarts = _Restarts("exit 3", "exit 3", "exit 3", "sleep 0.6", "exit 3")
    _supervise(restarts, starts=5)
    gaps = restarts.gaps()
    assert gaps[2] >= 0.4
    assert 0.7 <= gaps[3] < 1.1, gaps  # 0.6 s up, then the first delay again


def test_daphne_behind_https_is_ready_though_it_redirects_plain_http(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    # HTTPS=1 sends plain http to https (the proxy's job to speak): the readiness probe
    # must take the redirect as an answer, not follow it to a port that speaks no TLS.
    env = {**stack_env, "HTTPS": "1", "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    started = time.monotonic()
    service = stack.start_daphne(
        env, port=stack.free_port(), log_path=tmp_path / "d.log", timeout=30
    )
    try:
        assert time.monotonic() - started < 30
        request = urllib.request.Request(f"{service.url}/api/status")
        opener = urllib.request.build_opener(stack._NoRedirects)
        try:
            opener.open(request, timeout=5)
            raise AssertionError("HTTPS=1 did not redirect plain http")
        except urllib.error.HTTPError as error:
            assert error.code == 301 and error.headers["Location"].startswith("https://")
    finally:
        service.stop(grace=5)
