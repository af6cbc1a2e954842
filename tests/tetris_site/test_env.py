"""Settings read from the environment, with a persistent generated secret key."""

from pathlib import Path

import pytest

from tetris_site.env import env_bool, env_int, env_list, persistent_secret_key


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
    first = persistent_secret_key(tmp_path / "data")
    second = persistent_secret_key(tmp_path / "data")
    assert first == second
    assert len(first) >= 50
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
