"""manage.py run commands: tables, JSON, and one-line errors with a non-zero exit."""

import json
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from tetris_site import stack
from trainer import services
from trainer.models import Run

pytestmark = pytest.mark.django_db


def test_train_queue_then_runs_stop_resume(user: object, capsys: pytest.CaptureFixture) -> None:
    call_command("train", "--queue", "--name", "cli run", "--set", "lr=0.002", "--minutes", "1")
    run = Run.objects.get(name="cli run")
    assert run.config["lr"] == 0.002 and run.config["max_minutes"] == 1.0
    call_command("runs", "--json")
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert listed[0]["name"] == "cli run"
    call_command("stop", str(run.pk))
    assert Run.objects.get(pk=run.pk).status == "stopped"
    call_command("resume", str(run.pk))
    assert Run.objects.get(pk=run.pk).status == "queued"


def test_bad_config_is_a_command_error_naming_the_field(user: object) -> None:
    with pytest.raises(CommandError, match="gamma"):
        call_command("train", "--queue", "--set", "gamma=12")
    assert Run.objects.count() == 0


def test_user_option_applies_the_access_policy(user: object, other_user: object) -> None:
    run = services.run_create(owner=user, name="mine")
    with pytest.raises(CommandError, match="not found"):
        call_command("stop", str(run.pk), "--user", "bob")
    call_command("stop", str(run.pk), "--user", "ada")


def test_export_csv(user: object, capsys: pytest.CaptureFixture) -> None:
    from tests.trainer.test_services import _metrics

    run = services.run_create(owner=user, name="m")
    _metrics(run, 5)
    call_command("export", str(run.pk), "--format", "csv")
    assert len(capsys.readouterr().out.strip().splitlines()) == 6


def test_errors_are_one_line_without_traceback(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "stop", "not-a-number"],
        cwd=stack.BASE_DIR,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DATA_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "RUN must be a run id" in result.stderr


def test_train_in_the_foreground_then_evaluate(user: object, capsys: pytest.CaptureFixture) -> None:
    call_command(
        "train",
        "--name",
        "here",
        "--set",
        "max_episodes=3",
        "--set",
        "frames_per_second=0",
        "--set",
        "piece_cap=200",
    )
    run = Run.objects.get(name="here")
    assert run.status == "finished"
    assert run.episodes == 3
    assert run.checkpoints.exists()
    capsys.readouterr()
    call_command("evaluate", str(run.pk), "--games", "2", "--piece-cap", "100", "--json", "--here")
    result = json.loads(capsys.readouterr().out)
    assert result["games"] == 2 and result["piece_cap"] == 100
    assert set(result) >= {
        "mean_lines",
        "median_lines",
        "min_lines",
        "max_lines",
        "ci95_low",
        "ci95_high",
        "ended",
    }
    assert result["status"] == "done" and len(result["lines"]) == 2
    assert run.evaluations.get().ci95_low == result["ci95_low"]


def test_evaluate_without_a_checkpoint_is_a_clear_error(user: object) -> None:
    run = services.run_create(owner=user, name="never trained")
    with pytest.raises(CommandError, match="no checkpoint"):
        call_command("evaluate", str(run.pk))
