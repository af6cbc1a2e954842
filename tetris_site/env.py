"""Typed helpers that read settings from the environment (healthchecks' style)."""

import os
import secrets
from pathlib import Path


def env_str(name: str, default: str = "") -> str:
    """Return the variable as a string, or the default when unset or empty."""
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_bool(name: str, default: bool = False) -> bool:
    """Return the variable as a boolean: 1/true/yes/on are true, 0/false/no/off false."""
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (use 1 or 0)")


def env_int(name: str, default: int) -> int:
    """Return the variable as an integer, with a readable error when it is not one."""
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated variable as a list of non-empty, stripped items."""
    value = os.environ.get(name, "")
    if value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def default_data_dir(base_dir: Path) -> Path:
    """The data folder: DATA_DIR, or `data/` in the checkout."""
    return Path(env_str("DATA_DIR", str(base_dir / "data"))).resolve()


def read_secret_key(data_dir: Path) -> str:
    """The secret key kept in the data folder, which the launchers create."""
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise RuntimeError(
            f"no secret key in {data_dir}: set SECRET_KEY, or prepare the data folder with "
            "`make run`, `python manage.py ...` or `python -m tetris_site.stack prepare`"
        ) from None


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data folder (private to this account) and its secret key, once.

    The launchers call this (the stack, manage.py, the Makefile); the settings only read.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / "secret_key"
    if path.exists():
        return
    # Write a private temp file, then hard-link it into place: link() fails if another
    # process won the race, so every process ends up reading the same complete key.
    tmp = data_dir / f".secret_key.{os.getpid()}"
    tmp.write_text(secrets.token_urlsafe(50))
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
