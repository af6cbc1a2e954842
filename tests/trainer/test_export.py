"""manage.py export: CSV, JSON, and TensorBoard event files read back with TensorBoard's own
reader; exports read a page of rows at a time, and stream asynchronously under ASGI."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import AsyncClient, Client
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tetris_site import stack
from trainer import exporting, services
from trainer.exporting import metric_pages, write_tensorboard
from trainer.models import Metric, Run

pytestmark = pytest.mark.django_db


def store_episodes(run: Run, episodes: int, *, extra: dict | None = None) -> list[Metric]:
    """Store a dqn-like run's episodes: lines, score, loss and epsilon that change each one."""
    return Metric.objects.bulk_create(
        Metric(
            run=run,
            episode=episode,
            lines=episode * 3,
            score=episode * 300 + 7,
            pieces=episode * 8 + 20,
            reward=episode * 0.5,
            loss=1.0 / episode,
            epsilon=max(0.05, 1 - episode / 10),
            placements_per_second=1000.0 + episode,
            total_pieces=episode * (episode * 4 + 24),
            wall_time=episode * 1.5,
            extra=extra or {},
        )
        for episode in range(1, episodes + 1)
    )


def read_scalars(folder: Path) -> EventAccumulator:
    """TensorBoard's reader over the folder, every scalar kept (no reservoir sampling)."""
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_export_is_read_back_by_tensorboard_with_every_episode(
    user: object, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = services.run_create(owner=user, name="to tensorboard")
    stored = store_episodes(run, 25, extra={"charts/lr": 0.001, "charts/updates": 12})
    folder = tmp_path / "tb"

    call_command("export", str(run.pk), "--format", "tensorboard", "--output", str(folder))

    out = capsys.readouterr().out
    assert f"wrote 25 episodes of run {run.pk} to {folder}" in out
    assert f"tensorboard --logdir {folder}" in out
    events = read_scalars(folder)
    assert set(events.Tags()["scalars"]) == {
        "charts/lines",
        "charts/score",
        "charts/pieces",
        "charts/reward",
        "charts/epsilon",
        "charts/placements_per_second",
        "charts/total_pieces",
        "losses/td",
        "charts/lr",
        "charts/updates",
    }
    lines = events.Scalars("charts/lines")
    assert [event.step for event in lines] == [m.episode for m in stored]
    assert [event.value for event in lines] == [m.lines for m in stored]
    assert [event.value for event in events.Scalars("losses/td")] == pytest.approx(
        [m.loss for m in stored], rel=1e-6
    )
    assert [event.value for event in events.Scalars("charts/epsilon")] == pytest.approx(
        [m.epsilon for m in stored], rel=1e-6
    )
    assert events.Scalars("charts/lr")[0].value == pytest.approx(0.001)
    # Event times are the run's start plus its training seconds.
    wall_times = [event.wall_time for event in lines]
    assert wall_times[0] == pytest.approx(run.created_at.timestamp() + 1.5)
    assert wall_times[-1] - wall_times[0] == pytest.approx(24 * 1.5)


def test_tensorboard_export_leaves_out_figures_a_learner_does_not_report(
    user: object, tmp_path: Path
) -> None:
    run = services.run_create(owner=user, name="cem-like", algorithm="cem")
    Metric.objects.bulk_create(
        Metric(
            run=run,
            episode=episode,
            lines=episode,
            score=episode,
            pieces=episode,
            reward=float(episode),
            loss=None,
            epsilon=None,
            placements_per_second=1.0,
            total_pieces=episode,
            wall_time=float(episode),
            extra={"cem/generation": 1, "cem/noise": 0.5, "note": "not a number"},
        )
        for episode in range(1, 4)
    )

    path, episodes = write_tensorboard(run, tmp_path)

    assert episodes == 3 and path.parent == tmp_path
    assert path.name.startswith("events.out.tfevents.")
    tags = set(read_scalars(tmp_path).Tags()["scalars"])
    assert {"cem/generation", "cem/noise", "charts/lines"} <= tags
    assert not {"losses/td", "charts/epsilon", "charts/note", "note"} & tags


def test_tensorboard_export_of_a_run_with_no_episodes_writes_an_empty_log(
    user: object, tmp_path: Path
) -> None:
    run = services.run_create(owner=user, name="queued")
    path, episodes = write_tensorboard(run, tmp_path / "empty")
    assert episodes == 0 and path.exists()
    assert read_scalars(tmp_path / "empty").Tags()["scalars"] == []


def test_tensorboard_export_goes_to_tensorboard_run_id_by_default(
    user: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = services.run_create(owner=user, name="default folder")
    store_episodes(run, 3)
    monkeypatch.chdir(tmp_path)
    call_command("export", str(run.pk), "--format", "tensorboard")
    assert (
        len(read_scalars(tmp_path / "tensorboard" / f"run-{run.pk}").Scalars("charts/lines")) == 3
    )


def test_export_with_user_refuses_a_run_they_may_not_see(
    user: object, other_user: object, tmp_path: Path
) -> None:
    run = services.run_create(owner=user, name="private")
    store_episodes(run, 2)
    with pytest.raises(CommandError, match=f"run {run.pk} not found"):
        call_command(
            "export", str(run.pk), "--format", "tensorboard", "-o", str(tmp_path), "--user", "bob"
        )
    assert not list(tmp_path.iterdir())


def test_json_export_holds_the_run_and_every_row(
    user: object, capsys: pytest.CaptureFixture
) -> None:
    run = services.run_create(owner=user, name="as json")
    store_episodes(run, 4)
    call_command("export", str(run.pk), "--format", "json")
    body = json.loads(capsys.readouterr().out)
    assert body["run"]["name"] == "as json"
    assert [row["lines"] for row in body["metrics"]] == [3, 6, 9, 12]


def test_csv_export_has_a_header_and_a_row_per_episode(
    user: object, capsys: pytest.CaptureFixture
) -> None:
    run = services.run_create(owner=user, name="as csv")
    store_episodes(run, 4)
    call_command("export", str(run.pk), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["episode"] for row in rows] == ["1", "2", "3", "4"]
    assert rows[0]["loss"] == "1.0"


def test_web_process_does_not_load_tensorboard() -> None:
    # daphne imports the API, which imports the exporters; only the export loads tensorboard.
    code = (
        "import django, sys; django.setup();"
        "import tetris_site.urls, tetris_site.asgi;"
        "print('tensorboard' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=stack.BASE_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tetris_site.settings"},
        check=True,
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("episodes", [6, 7])
def test_metric_pages_hold_every_row_once_in_episode_order(
    user: object, monkeypatch: pytest.MonkeyPatch, episodes: int
) -> None:
    monkeypatch.setattr(exporting, "PAGE_ROWS", 3)
    run = services.run_create(owner=user, name="paged")
    store_episodes(run, episodes)
    store_episodes(services.run_create(owner=user, name="another"), 4)

    pages = list(metric_pages(run.pk))

    assert [len(page) for page in pages] == [3, 3] + ([1] if episodes == 7 else [])
    assert [row[0] for page in pages for row in page] == list(range(1, episodes + 1))


def test_json_and_csv_exports_of_several_pages_hold_every_row(
    user: object, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporting, "PAGE_ROWS", 2)
    run = services.run_create(owner=user, name="several pages")
    store_episodes(run, 5, extra={"charts/lr": 0.5})

    call_command("export", str(run.pk), "--format", "json")
    body = json.loads(capsys.readouterr().out)
    call_command("export", str(run.pk), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))

    assert [row["episode"] for row in body["metrics"]] == [1, 2, 3, 4, 5]
    assert body["metrics"][4]["extra"] == {"charts/lr": 0.5}
    assert [row["episode"] for row in rows] == ["1", "2", "3", "4", "5"]


def test_an_export_streams_asynchronously_under_asgi_and_synchronously_under_wsgi(
    user: object,
) -> None:
    run = services.run_create(owner=user, name="either way")
    store_episodes(run, 3)
    url = f"/api/compare/export.csv?runs={run.pk}"
    wsgi = Client()
    wsgi.force_login(user)
    asgi = AsyncClient()
    asgi.force_login(user)

    async def fetch() -> tuple[bool, bytes]:
        response = await asgi.get(url)
        return response.is_async, b"".join([part async for part in response.streaming_content])

    is_async, body = async_to_sync(fetch)()
    response = wsgi.get(url)

    assert is_async and not response.is_async
    assert body == b"".join(response.streaming_content)
    assert body.count(b"\n") == 4
