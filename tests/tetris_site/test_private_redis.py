"""The private Redis the launcher starts is this account's alone: another local account
can neither talk to it nor read its password or data, and the settings keep every file
the app writes private."""

import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tetris_site import stack


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return f"redis://{parts.hostname}:{parts.port}{parts.path}"


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


@pytest.mark.redis
def test_private_redis_refuses_a_client_without_its_password(
    redis_server: stack.Service,
) -> None:
    stranger = redis.Redis.from_url(_without_password(redis_server.url))
    with pytest.raises(redis.AuthenticationError):
        stranger.ping()
    # No retries: redis-py would try a refused password again, with backoff, for seconds.
    guesser = redis.Redis(
        "127.0.0.1", redis_server.extra["port"], password="guess", retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(redis.AuthenticationError):
        guesser.ping()
    assert redis.Redis.from_url(redis_server.url).ping()


@pytest.mark.redis
def test_private_redis_knows_no_command_that_writes_files_elsewhere(
    redis_server: stack.Service,
) -> None:
    # Even with the password: CONFIG SET dir + SAVE would write anywhere this account may.
    client = redis.Redis.from_url(redis_server.url)
    for command in (("CONFIG", "SET", "dir", "/tmp"), ("DEBUG", "SLEEP", "0")):
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command(*command)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask most shells give (022), not the private one the settings set here."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_private_redis_keeps_its_password_and_data_private_and_across_restarts(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-server overwrites its own title, so `ps` is no witness: record what it was given.
    command_lines: list[str] = []
    spawn = stack._spawn

    def recording_spawn(name: str, args: Sequence[str], *rest: object) -> stack.Service:
        command_lines.append(" ".join(args))
        return spawn(name, args, *rest)

    monkeypatch.setattr(stack, "_spawn", recording_spawn)
    service = stack.start_redis(tmp_path)
    try:
        client = redis.Redis.from_url(service.url)
        client.set("kept", "1")
        password = urlsplit(service.url).password
        assert password and command_lines and password not in command_lines[0]
    finally:
        service.stop(grace=5)
    redis_dir = tmp_path / "redis"
    assert (redis_dir / "password").read_text() == password
    paths = [redis_dir, *redis_dir.rglob("*")]
    assert any(path.name.startswith("appendonly") for path in paths)
    assert all(_private(path) for path in paths), {p.name: oct(p.stat().st_mode) for p in paths}

    again = stack.start_redis(tmp_path, port=service.extra["port"])
    try:
        assert again.url == service.url  # the clients' URL still works after a restart
        assert redis.Redis.from_url(again.url).get("kept") == b"1"
    finally:
        again.stop(grace=5)


def test_settings_make_every_file_the_app_writes_private(tmp_path: Path) -> None:
    # A process started by hand or by systemd, not by the launcher, still writes private files.
    code = "import os; import tetris_site.settings; print(oct(os.umask(0)))"
    env = {**os.environ, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x" * 50}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=stack.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        umask=0o022,
        check=True,
    )
    assert result.stdout.strip() == "0o77"
