"""`make run`'s launcher: it serves, counts its worker, and Ctrl-C leaves nothing behind."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tetris_site import stack

pytestmark = pytest.mark.stack


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def test_launcher_serves_and_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    port = stack.free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(DATA_DIR=str(tmp_path), PORT=str(port), TORCH_THREADS="1")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tetris_site.stack", "run"],
        cwd=stack.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = launcher.stdout.readline()
            output.append(line)
            if "is running at" in line or launcher.poll() is not None:
                break
        assert f"http://127.0.0.1:{port}/" in "".join(output), "".join(output)
        status = _get_json(f"http://127.0.0.1:{port}/api/status")
        assert status["workers"] >= 1
        assert status["redis"] is True
        children = psutil.Process(launcher.pid).children(recursive=True)
        assert len(children) >= 3  # redis, daphne, worker (and its pool)
        redis_url = (tmp_path / "redis.url").read_text()
        assert "6379" not in redis_url
    finally:
        launcher.send_signal(signal.SIGINT)
        launcher.wait(60)
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child
    assert launcher.returncode == 0
    assert not (tmp_path / "redis.url").exists()
    assert (tmp_path / "redis" / "appendonly.aof").exists() or any(
        (tmp_path / "redis").glob("appendonly*")
    )


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
