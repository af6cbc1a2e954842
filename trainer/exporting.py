"""Runs' histories as CSV, JSON or TensorBoard event files, for the API, the admin and
`manage.py export`."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from trainer.models import BestGame, Checkpoint, Evaluation, Metric, Run
from trainer.rl.events import SCORE_FIELDS
from trainer.selectors import METRIC_FIELDS

CSV_COLUMNS = (*METRIC_FIELDS, "extra")
COMPARISON_CSV_COLUMNS = ("run_id", "run_name", *CSV_COLUMNS)
# Lines of CSV (or rows of JSON) per chunk of a streamed comparison: few, large writes.
CHUNK_ROWS = 1000
# TensorBoard tags of the metric columns, namespaced like the training loop's own names;
# `extra` figures keep their names ("charts/lr", "cem/noise").
TENSORBOARD_TAGS = {
    "lines": "charts/lines",
    "score": "charts/score",
    "pieces": "charts/pieces",
    "reward": "charts/reward",
    "epsilon": "charts/epsilon",
    "placements_per_second": "charts/placements_per_second",
    "total_pieces": "charts/total_pieces",
    "loss": "losses/td",
}


def metrics_csv_lines(run: Run) -> Iterator[str]:
    """The run's metrics as CSV text, a line at a time (streams millions of rows)."""
    rows = Metric.objects.filter(run=run).order_by("episode").values_list(*CSV_COLUMNS)
    return _csv_lines(CSV_COLUMNS, rows.iterator(chunk_size=5000))


def comparison_csv_lines(runs: list[Run]) -> Iterator[str]:
    """Every metric row of the runs as one CSV, run by run, with run_id and run_name first."""

    def rows() -> Iterator[tuple]:
        for run in runs:
            metrics = Metric.objects.filter(run=run).order_by("episode")
            for row in metrics.values_list(*CSV_COLUMNS).iterator(chunk_size=5000):
                yield (run.pk, run.name, *row)

    return _chunks(_csv_lines(COMPARISON_CSV_COLUMNS, rows()))


def _csv_lines(header: Iterable[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(header)
    yield take()
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
        yield take()


# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """Text that a spreadsheet would run as a formula, made plain text with a leading
    apostrophe (OWASP's advice); numbers and other text pass unchanged."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def _chunks(pieces: Iterable[str]) -> Iterator[str]:
    batch: list[str] = []
    for piece in pieces:
        batch.append(piece)
        if len(batch) >= CHUNK_ROWS:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


def run_summary(run: Run) -> dict:
    """The run's stored fields as JSON-safe data: the one serialization of a run."""
    return {
        "id": run.pk,
        "name": run.name,
        "owner": run.owner.get_username(),
        "algorithm": run.algorithm,
        "preset": run.preset,
        "config": run.config,
        "seed": run.seed,
        "visibility": run.visibility,
        "status": run.status,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "heartbeat_at": run.heartbeat_at.isoformat() if run.heartbeat_at else None,
        "worker": run.worker,
        "code_version": run.code_version,
        "episodes": run.episodes,
        "total_pieces": run.total_pieces,
        "best_lines": run.best_lines,
        "recent_mean_lines": run.recent_mean_lines,
        "wall_time": run.wall_time,
        "curve": run.curve,
        "best_evaluation": run.best_evaluation,
    }


# The figures of an evaluation that every place showing one shows.
EVALUATION_FIELDS = (
    "id",
    "kind",
    "status",
    "episode",
    "total_pieces",
    "wall_time",
    "games",
    "games_done",
    "piece_cap",
    *SCORE_FIELDS,
    "seconds",
    "best",
)


def evaluation_summary(evaluation: Evaluation) -> dict:
    """An evaluation's figures as JSON-safe data."""
    return {
        **{name: getattr(evaluation, name) for name in EVALUATION_FIELDS},
        "created_at": evaluation.created_at.isoformat(),
    }


def best_game_summary(game: BestGame | None) -> dict | None:
    """A best game as the viewer lists it (without its placements)."""
    if game is None:
        return None
    return {"lines": game.lines, "pieces": game.pieces, "episode": game.episode}


def best_games_summary(run_id: int) -> dict[str, dict | None]:
    """The run's best game of each kind (None where it has none yet)."""
    best = {game.kind: game for game in BestGame.objects.filter(run_id=run_id).defer("actions")}
    return {kind: best_game_summary(best.get(kind)) for kind in BestGame.Kind.values}


def run_watch_lists(run: Run) -> dict:
    """What the viewer lists beside the board: evaluations, checkpoints, best games."""
    checkpoints = Checkpoint.objects.filter(run=run).order_by("-episode", "-id")
    evaluations = Evaluation.objects.filter(run=run).order_by("created_at", "id")
    return {
        "evaluations": [evaluation_summary(e) for e in evaluations],
        "checkpoints": [checkpoint_summary(c) for c in checkpoints],
        "best_games": best_games_summary(run.pk),
    }


def checkpoint_summary(checkpoint: Checkpoint) -> dict:
    """A checkpoint as the viewer lists it."""
    return {
        "id": checkpoint.pk,
        "kind": checkpoint.kind,
        "episode": checkpoint.episode,
        "total_pieces": checkpoint.total_pieces,
        "wall_time": checkpoint.wall_time,
        "created_at": checkpoint.created_at.isoformat(),
    }


def run_export_json(run: Run) -> dict:
    """The run and every metric row."""
    rows = Metric.objects.filter(run=run).order_by("episode").values(*CSV_COLUMNS)
    return {"run": run_summary(run), "metrics": list(rows.iterator(chunk_size=5000))}


def comparison_json_chunks(runs: list[Run]) -> Iterator[str]:
    """`{"runs": [{"run": ..., "metrics": [...]}, ...]}` as text, in chunks (any size)."""

    def pieces() -> Iterator[str]:
        yield '{"runs": ['
        for index, run in enumerate(runs):
            yield f'{"," if index else ""}{{"run": {json.dumps(run_summary(run))}, "metrics": ['
            rows = Metric.objects.filter(run=run).order_by("episode").values(*CSV_COLUMNS)
            for number, row in enumerate(rows.iterator(chunk_size=5000)):
                yield ("," if number else "") + json.dumps(row, default=str)
            yield "]}"
        yield "]}\n"

    return _chunks(pieces())


def tensorboard_scalars(row: dict) -> dict[str, float]:
    """One metric row's figures under their TensorBoard tags; missing figures are left out."""
    scalars = {
        tag: float(row[name]) for name, tag in TENSORBOARD_TAGS.items() if row[name] is not None
    }
    for name, value in (row.get("extra") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            scalars[name if "/" in name else f"charts/{name}"] = float(value)
    return {tag: value for tag, value in scalars.items() if not math.isnan(value)}


def write_tensorboard(run: Run, directory: Path) -> tuple[Path, int]:
    """Write the run's metrics as a TensorBoard event file in `directory`, a step per episode.

    Answers the file's path and how many episodes it holds. Event times are the run's
    creation time plus its training seconds, so TensorBoard's "relative" axis shows time
    spent training.
    """
    # Imported here: only this export needs tensorboard, never the web process.
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    directory.mkdir(parents=True, exist_ok=True)
    earlier = set(directory.glob("events.out.tfevents.*"))
    writer = EventFileWriter(str(directory), max_queue_size=1000, filename_suffix=f".run{run.pk}")
    start = run.created_at.timestamp()
    rows = Metric.objects.filter(run=run).order_by("episode").values(*CSV_COLUMNS)
    written = 0
    try:
        for row in rows.iterator(chunk_size=5000):
            values = [
                Summary.Value(tag=tag, simple_value=value)
                for tag, value in tensorboard_scalars(row).items()
            ]
            event = Event(
                wall_time=start + row["wall_time"],
                step=row["episode"],
                summary=Summary(value=values),
            )
            writer.add_event(event)
            written += 1
    finally:
        writer.close()
    (path,) = set(directory.glob("events.out.tfevents.*")) - earlier
    return path, written
