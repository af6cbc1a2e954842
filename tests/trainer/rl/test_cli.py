"""`python -m trainer.rl`: train with a progress bar, evaluate as a table or JSON."""

import json
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer.rl", *args], capture_output=True, text=True, timeout=120
    )


def test_train_then_evaluate_as_json(tmp_path: Path) -> None:
    trained = run_cli(
        "train",
        "--preset",
        "quick",
        "--set",
        "max_pieces=1500",
        "--set",
        "learning_starts=500",
        "--minutes",
        "1",
        "--out",
        str(tmp_path),
    )
    assert trained.returncode == 0, trained.stderr
    assert "finished" in trained.stdout and (tmp_path / "checkpoint.pt").is_file()

    evaluated = run_cli("evaluate", str(tmp_path), "--games", "2", "--piece-cap", "40", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    values = json.loads(evaluated.stdout)
    assert values["games"] == 2 and values["piece_cap"] == 40
    assert {"mean_lines", "median_lines", "min_lines", "max_lines"} <= set(values)


def test_evaluate_reference_controller_prints_a_table() -> None:
    evaluated = run_cli("evaluate", "dellacherie", "--games", "2", "--piece-cap", "300")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "mean lines" in evaluated.stdout and "300 pieces" in evaluated.stdout


def test_bad_setting_exits_with_the_reason(tmp_path: Path) -> None:
    result = run_cli("train", "--set", "gamma=2", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "gamma" in result.stderr and "between" in result.stderr
