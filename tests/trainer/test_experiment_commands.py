"""manage.py experiment: create, status, stop and export from the shell."""

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from trainer import experiments
from trainer.models import Experiment, Run

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("experiment", *args, stdout=out)
    return out.getvalue()


def test_create_status_stop_and_export(user: object) -> None:
    text = run(
        "create",
        "--name",
        "lr sweep",
        "--set",
        "max_minutes=1",
        "--grid",
        "lr=0.001,0.0003",
        "--seeds",
        "2",
        "--parallel",
        "2",
    )
    experiment = Experiment.objects.get()
    assert f"experiment {experiment.pk}" in text and "2 configurations x 2 seeds" in text
    assert experiment.grid == {"lr": [0.001, 0.0003]} and experiment.config == {"max_minutes": 1.0}
    experiments.experiment_advance(experiment_id=experiment.pk)  # as the workers' sweep does
    status = run("status", str(experiment.pk))
    assert "is running" in status and "lr=" in status
    assert json.loads(run("status", str(experiment.pk), "--json"))["id"] == experiment.pk
    assert "lr sweep" in run("status")
    assert "are public" in run("visibility", str(experiment.pk), "public")
    assert Run.objects.filter(experiment=experiment, visibility="public").count() == 2
    assert "is stopped" in run("stop", str(experiment.pk))
    rows = list(csv.DictReader(io.StringIO(run("export", str(experiment.pk), "--format", "csv"))))
    assert len(rows) == Run.objects.filter(experiment=experiment).count() == 2
    assert {row["status"] for row in rows} == {"stopped"} and rows[0]["lr"]


def test_bad_input_names_the_field_and_creates_nothing(user: object) -> None:
    with pytest.raises(CommandError, match=r"grid\.lr"):
        run("create", "--name", "x", "--set", "max_minutes=1", "--grid", "lr=fast")
    with pytest.raises(CommandError, match=r"space\.gamma"):
        run("create", "--name", "x", "--set", "max_minutes=1", "--range", "gamma=0.99:0.9")
    with pytest.raises(CommandError, match="max_minutes"):
        run("create", "--name", "x", "--set", "max_minutes=0")
    assert not Experiment.objects.exists()


def test_another_users_private_experiment_is_not_found(user: object, other_user: object) -> None:
    run("create", "--name", "mine", "--set", "max_minutes=1", "--user", "ada")
    experiment = Experiment.objects.get()
    with pytest.raises(CommandError, match="not found"):
        run("status", str(experiment.pk), "--user", "bob")
    with pytest.raises(CommandError, match="not found"):
        run("stop", str(experiment.pk), "--user", "bob")
