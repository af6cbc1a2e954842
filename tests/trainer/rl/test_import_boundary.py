"""The learning core stands alone: no Django, and no torch for code that only reads configs."""

import subprocess
import sys

WEB_FRAMEWORKS = ("django", "channels", "celery")


def loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has loaded after running `statement`."""
    check = f"import sys; {statement}; print(*[m for m in {modules!r} if m in sys.modules])"
    output = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    ).stdout
    return output.split()


def test_learning_core_loads_no_web_framework() -> None:
    statement = "from trainer.rl import train, evaluate; import trainer.rl.__main__"
    assert loaded_after(statement, WEB_FRAMEWORKS) == []


def test_config_and_events_load_no_torch() -> None:
    statement = "from trainer.rl import TrainConfig, PRESETS, Callback, EpisodeMetrics"
    assert loaded_after(statement, ("torch", "numba")) == []
