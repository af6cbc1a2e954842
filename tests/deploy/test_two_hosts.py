"""The README's scale-out layout, for real: deploy/nginx.conf in front of two daphne
processes, and two worker "hosts" that share only the database and Redis.

Each host has its own DATA_DIR and MEDIA_ROOT and no folder in common, so checkpoints go
through CHECKPOINT_STORAGE=database. The layout gets a Redis of its own, so the suite's
shared worker cannot take its runs; the test acts through the proxy as a user would, by
the API and the pages. A run trains on host B, stops, and host B's disk is
deleted; the run resumes on host A, its checkpoint downloads through the proxy, and host A's
play worker plays it. Viewers connected through the proxy to either daphne see its frames.
"""

import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from tests.faults.waiting import status_of, wait_for
from tests.wsclient import open_socket, receive_json
from tetris_site import stack
from trainer.models import Checkpoint, Run

NGINX = Path("/usr/sbin/nginx")
REPO_ROOT = Path(__file__).resolve().parents[2]
SITE = REPO_ROOT / "deploy" / "nginx.conf"

pytestmark = [
    pytest.mark.stack,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not NGINX.exists(),
        reason=f"the proxy test needs Debian's nginx at {NGINX} (apt-get install -y nginx)",
    ),
]

CONFIG = {"threads": 1, "checkpoint_every_s": 1.0, "max_minutes": 10.0, "eval_every_pieces": 0}


def site_config(folder: Path, listen: int, upstreams: list[int], static_root: Path) -> Path:
    """deploy/nginx.conf with this test's addresses, port and static folder."""
    text = SITE.read_text()
    replacements = {
        "    server 127.0.0.1:8001;\n    server 127.0.0.1:8002;\n": "".join(
            f"    server 127.0.0.1:{port};\n" for port in upstreams
        ),
        "listen 8080;": f"listen 127.0.0.1:{listen};",
        "/srv/tetris/data/staticfiles/": f"{static_root}/",
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    site = folder / "tetris.conf"
    site.write_text(text)
    main = folder / "nginx.conf"
    temp = " ".join(
        f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    main.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
        + f"error_log {folder / 'error.log'};\nevents {{ worker_connections 512; }}\n"
        + f"http {{\n  access_log {folder / 'access.log'};\n  {temp}\n"
        + f"  uwsgi_temp_path {folder / 'uwsgi'}; scgi_temp_path {folder / 'scgi'};\n"
        + f"  include /etc/nginx/mime.types;\n  include {site};\n}}\n"
    )
    return main


def start_nginx(folder: Path, config: Path, port: int) -> stack.Service:
    """nginx in the foreground with `config`, ready once the proxy answers."""
    log = open(folder / "nginx.out", "ab")  # noqa: SIM115 (closed in Service.stop)
    process = subprocess.Popen(
        [str(NGINX), "-c", str(config), "-p", str(folder), "-e", str(folder / "error.log")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    service = stack.Service(name="nginx", process=process, log=log)
    service.url = f"http://127.0.0.1:{port}"
    wait_for(lambda: stack._http_answers(service.url + "/api/status"), 30, "nginx to proxy")
    return service


def host_env(stack_env: dict[str, str], data_dir: Path, redis_url: str) -> dict[str, str]:
    """A host of its own: its DATA_DIR (and MEDIA_ROOT in it), checkpoints in the database."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **stack_env,
        "DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "CHECKPOINT_STORAGE": "database",
    }
    env.pop("MEDIA_ROOT", None)
    return env


@pytest.fixture
def services_started() -> Iterator[list[stack.Service]]:
    """Processes the test starts, stopped at its end."""
    started: list[stack.Service] = []
    yield started
    for service in reversed(started):
        service.stop(grace=3)


def through(proxy: stack.Service, session: str, path: str, body: dict | None = None) -> bytes:
    """GET, or POST `body` as JSON, through the proxy as the signed-in user."""
    token = "t" * 32  # a CSRF secret of the client's choosing, sent as cookie and header
    request = urllib.request.Request(
        proxy.url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Cookie": f"sessionid={session}; csrftoken={token}",
            "X-CSRFToken": token,
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def session_of(user: AbstractBaseUser) -> str:
    """A signed-in session cookie for the user."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def frames(socket: object, count: int, timeout: float = 60) -> list[dict]:
    """The next `count` frame messages on a socket, going past the others."""
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count:
        message = await receive_json(socket, timeout=max(0.1, deadline - time.monotonic()))
        if message["type"] == "frame":
            got.append(message)
    return got


def test_a_run_moves_between_hosts_behind_nginx_with_no_shared_disk(
    monkeypatch: pytest.MonkeyPatch,
    stack_env: dict[str, str],
    tmp_path: Path,
    user: AbstractBaseUser,
    services_started: list[stack.Service],
) -> None:
    # The scenario's coroutine reads the database between socket reads.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    redis_server = stack.start_redis(tmp_path / "redis", log_path=tmp_path / "redis.log")
    services_started.append(redis_server)
    host_a = host_env(stack_env, tmp_path / "a", redis_server.url)
    host_b = host_env(stack_env, tmp_path / "b", redis_server.url)
    stack.manage("collectstatic", "--noinput", "-v", "0", env=host_a)
    ports = [stack.free_port(), stack.free_port()]
    logs = [tmp_path / f"daphne-{i}.log" for i in range(2)]
    with ThreadPoolExecutor(2) as pool:  # both start at once, as on two machines
        started = pool.map(
            lambda port, log, env: stack.start_daphne(env, port=port, log_path=log),
            ports,
            logs,
            (host_a, host_b),
        )
        services_started.extend(started)
    proxy_port = stack.free_port()
    config = site_config(tmp_path, proxy_port, ports, tmp_path / "a" / "staticfiles")
    proxy = start_nginx(tmp_path, config, proxy_port)
    services_started.append(proxy)

    with urllib.request.urlopen(proxy.url + "/static/js/viewer.js", timeout=10) as response:
        assert response.status == 200  # from STATIC_ROOT, by nginx itself

    session = session_of(user)
    created = through(proxy, session, "/api/runs/", {"name": "two hosts", "config": CONFIG})
    run = Run.objects.get(pk=json.loads(created)["id"])
    path = f"/ws/runs/{run.pk}/"

    async def watch_training(sockets: list, what: str) -> None:
        for socket in sockets:
            got = await frames(socket, 3)
            assert all(f["board"] for f in got), what

    async def scenario() -> Run:
        sockets = []
        # nginx hands requests to the daphne processes in turn: open viewers until each
        # daphne serves one.
        while not all(path in log.read_text() for log in logs):
            assert len(sockets) < 8, "nginx never used both daphne processes"
            sockets.append(await open_socket(proxy.url, path, session=session))
            assert (await receive_json(sockets[-1]))["type"] == "snapshot"
            await asyncio.sleep(0.3)
        try:
            worker_b = stack.start_worker(
                host_b, name="host-b", queues="training", log_path=tmp_path / "worker-b.log"
            )
            services_started.append(worker_b)
            await watch_training(sockets, "trained on host B")
            await asyncio.to_thread(
                wait_for, lambda: Checkpoint.objects.filter(run=run).exists(), 60, "a checkpoint"
            )
            through(proxy, session, f"/api/runs/{run.pk}/stop", {})
            await asyncio.to_thread(
                wait_for, lambda: status_of(run.pk) == "stopped", 60, "stopped on host B"
            )
            worker_b.stop(grace=10)
            shutil.rmtree(tmp_path / "b")  # host B is gone, and its disk with it

            def start_on_a(name: str, queues: str) -> stack.Service:
                log_path = tmp_path / f"worker-{name}.log"
                return stack.start_worker(host_a, name=name, queues=queues, log_path=log_path)

            with ThreadPoolExecutor(2) as pool:
                started = pool.map(start_on_a, ("host-a", "host-a-play"), ("training", "play"))
                services_started.extend(started)
            on_b = Run.objects.get(pk=run.pk)
            through(proxy, session, f"/api/runs/{run.pk}/resume", {})

            def trained_on() -> bool:
                now = Run.objects.get(pk=run.pk)
                return now.status == "running" and now.total_pieces > on_b.total_pieces

            await asyncio.to_thread(wait_for, trained_on, 60, "training again, on host A")
            for socket in sockets:  # past the frames host B sent before it stopped
                while (await frames(socket, 1))[0]["episode"] < on_b.episodes:
                    pass
            await watch_training(sockets, "trained on host A")
            through(proxy, session, f"/api/runs/{run.pk}/stop", {})
            await asyncio.to_thread(
                wait_for, lambda: status_of(run.pk) == "stopped", 60, "stopped on host A"
            )
            return on_b
        finally:
            for socket in sockets:
                await socket.close()

    on_b = asyncio.run(scenario())
    run.refresh_from_db()
    assert run.total_pieces > on_b.total_pieces
    assert f"[{on_b.task_id}]" in (tmp_path / "worker-b.log").read_text()
    assert f"[{run.task_id}]" in (tmp_path / "worker-host-a.log").read_text()
    cached = list((tmp_path / "a" / "cache" / "checkpoints").glob("*.pt"))
    assert cached, "host A fetched B's checkpoint from the database to resume it"

    latest = Checkpoint.objects.filter(run=run, kind="latest").order_by("-episode").first()
    body = through(proxy, session, f"/runs/{run.pk}/checkpoints/{latest.pk}/download")
    assert len(body) == latest.size_bytes
    assert torch.load(io.BytesIO(body), weights_only=False)["format"] == 1

    page = through(proxy, session, f"/runs/{run.pk}/play/?checkpoint={latest.pk}&pps=30")
    play_path = re.search(r"/ws/play/[\w-]+/", page.decode())[0]

    async def watch_play() -> list[dict]:
        socket = await open_socket(proxy.url, play_path, session=session)
        try:
            return await frames(socket, 3)
        finally:
            await socket.close()

    played = asyncio.run(watch_play())
    assert [f["pieces"] for f in played] == sorted(f["pieces"] for f in played)
    assert "trainer.tasks.play_game" in (tmp_path / "worker-host-a-play.log").read_text()
