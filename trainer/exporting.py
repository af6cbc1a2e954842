"""Runs' histories as CSV, JSON or TensorBoard event files, for the API, the admin and
`manage.py export`, and the responses that stream them (and checkpoint files) from daphne.

An export is a generator of text chunks, each made by one query of `PAGE_ROWS` rows; the
same generator feeds a file, a WSGI response and, a chunk at a time in a worker thread,
an ASGI one (`streamed`). Memory stays a page deep whatever the export's size.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from trainer.models import BestGame, Checkpoint, Evaluation, Metric, Run
from trainer.rl.events import SCORE_FIELDS
from trainer.selectors import METRIC_FIELDS

CSV_COLUMNS = (*METRIC_FIELDS, "extra")
EPISODE = CSV_COLUMNS.index("episode")
COMPARISON_CSV_COLUMNS = ("run_id", "run_name", *CSV_COLUMNS)
# Metric rows per query, and per chunk, of an export: a few MB of memory at most, and
# few, large writes.
PAGE_ROWS = 1000
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


def export_response(
    request: HttpRequest, chunks: Iterator[str], *, content_type: str, filename: str
) -> StreamingHttpResponse:
    """An attachment of `chunks`, streamed to the client as they are made."""
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return streamed(request, response)


def streamed(request: HttpRequest, response: StreamingHttpResponse) -> StreamingHttpResponse:
    """The response, made to stream under ASGI too.

    Django's ASGI handler reads a synchronous iterator to its end before it sends a byte
    (a whole export in daphne's memory); given an asynchronous one, it sends each chunk
    as it comes. The WSGI handler and the test client want the synchronous one.
    """
    if isinstance(request, ASGIRequest) and not response.is_async:
        response.streaming_content = each_in_thread(response.streaming_content)
    return response


async def each_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks, each made in the request's own thread (its queries, its file reads)
    while daphne's event loop serves everything else."""
    make = sync_to_async(next, thread_sensitive=True)
    while (chunk := await make(chunks, None)) is not None:
        yield chunk


def metric_pages(run_id: int) -> Iterator[list[tuple]]:
    """The run's metric rows (`CSV_COLUMNS`) in episode order, `PAGE_ROWS` at a time.

    Each page is one query that starts after the last episode of the one before (a run
    has each episode once), so nothing is held between pages: no cursor, and no read
    transaction that would keep SQLite's log from being checkpointed during a long
    download.
    """
    rows = Metric.objects.filter(run_id=run_id).order_by("episode").values_list(*CSV_COLUMNS)
    after = None
    while True:
        page = list((rows if after is None else rows.filter(episode__gt=after))[:PAGE_ROWS])
        if page:
            yield page
        if len(page) < PAGE_ROWS:
            return
        after = page[-1][EPISODE]


def metrics_csv_lines(run: Run) -> Iterator[str]:
    """The run's metrics as CSV text, a page of rows per chunk (streams millions of rows)."""
    return _csv_chunks(CSV_COLUMNS, metric_pages(run.pk))


def comparison_csv_lines(runs: list[Run]) -> Iterator[str]:
    """Every metric row of the runs as one CSV, run by run, with run_id and run_name first."""

    def pages() -> Iterator[list[tuple]]:
        for run in runs:
            for page in metric_pages(run.pk):
                yield [(run.pk, run.name, *row) for row in page]

    return _csv_chunks(COMPARISON_CSV_COLUMNS, pages())


def _csv_chunks(header: Sequence[str], pages: Iterable[list[tuple]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(header)
    yield take()
    for page in pages:
        writer.writerows([spreadsheet_safe(cell) for cell in row] for row in page)
        yield take()


# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """Text that a spreadsheet would run as a formula, made plain text with a leading
    apostrophe (OWASP's advice); numbers and other text pass unchanged."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


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


def run_json_chunks(run: Run) -> Iterator[str]:
    """`{"run": ..., "metrics": [...]}`: the run and every metric row, as JSON text in
    chunks, a row per line."""
    yield f'{{"run": {json.dumps(run_summary(run), default=str)},\n"metrics": ['
    for number, page in enumerate(metric_pages(run.pk)):
        rows = ",\n".join(
            json.dumps(dict(zip(CSV_COLUMNS, row, strict=True)), default=str) for row in page
        )
        yield ("," if number else "") + "\n" + rows
    yield "\n]}"


def runs_json_chunks(runs: Iterable[Run]) -> Iterator[str]:
    """`[{"run": ..., "metrics": [...]}, ...]`, each run as `run_json_chunks` writes it."""
    yield "["
    for index, run in enumerate(runs):
        if index:
            yield ",\n"
        yield from run_json_chunks(run)
    yield "]\n"


def comparison_json_chunks(runs: list[Run]) -> Iterator[str]:
    """`{"runs": [{"run": ..., "metrics": [...]}, ...]}` as JSON text in chunks."""
    yield '{"runs": '
    yield from runs_json_chunks(runs)
    yield "}\n"


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
