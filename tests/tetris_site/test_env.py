"""Settings read from the environment, with a persistent generated secret key."""

from pathlib import Path

import pytest

from tetris_site.env import env_bool, env_int, env_list, prepare_data_dir, read_secret_key


def test_env_bool_accepts_usual_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in [("1", True), ("yes", True), ("0", False), ("off", False)]:
        monkeypatch.setenv("FLAG", raw)
        assert env_bool("FLAG") is expected
    monkeypatch.delenv("FLAG")
    assert env_bool("FLAG", default=True) is True


def test_env_bool_rejects_garbage_with_the_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ValueError, match="DEBUG"):
        env_bool("DEBUG")


def test_env_int_and_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("ALLOWED_HOSTS", "a.example, b.example,")
    assert env_int("PORT", 8000) == 9000
    assert env_list("ALLOWED_HOSTS", []) == ["a.example", "b.example"]
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(ValueError, match="PORT"):
        env_int("PORT", 8000)


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    prepare_data_dir(tmp_path / "data")
    first = read_secret_key(tmp_path / "data")
    prepare_data_dir(tmp_path / "data")
    assert read_secret_key(tmp_path / "data") == first
    assert len(first) >= 50
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "data").stat().st_mode & 0o077 == 0


def test_the_settings_only_read_and_say_what_to_do_when_nothing_is_prepared(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    data_dir = tmp_path / "never-prepared"
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "tetris_site.settings",
    }
    env.pop("SECRET_KEY", None)
    env.pop("REDIS_URL", None)
    code = "import django; django.setup()"
    failed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert failed.returncode != 0
    assert "no secret key" in failed.stderr and "tetris_site.stack prepare" in failed.stderr
    assert not data_dir.exists(), "importing the settings created the data folder"

    prepared = subprocess.run(
        [sys.executable, "-m", "tetris_site.stack", "prepare"], env=env, capture_output=True
    )
    assert prepared.returncode == 0
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret_key"]
