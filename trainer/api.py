"""The runs API: thin adapters that parse, check access, call a service, and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.db import transaction
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Field, Router, Schema, Status

from trainer import selectors, services
from trainer.exporting import (
    evaluation_summary,
    export_response,
    metrics_csv_lines,
    run_summary,
)
from trainer.models import Run

router = Router(tags=["runs"])


class RunIn(Schema):
    """A new run: only `name` is required."""

    name: str = Field(..., min_length=1, max_length=200)
    algorithm: str | None = Field(None, description="dqn or cem; default: the preset's")
    preset: str = Field("quick", description="quick, standard or record")
    config: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields")
    visibility: str = Field("private", description="private or public")
    seed: int | None = None


class RunOut(Schema):
    """A run as the API shows it: `trainer.exporting.run_summary`, the one serialization of a
    run (the API, the viewer's snapshot, exports and `--json` all use it)."""

    id: int
    name: str
    owner: str
    algorithm: str
    preset: str
    config: dict[str, Any]
    seed: int
    visibility: str
    status: str
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    worker: str
    code_version: str
    episodes: int
    total_pieces: int
    best_lines: int
    recent_mean_lines: float
    wall_time: float
    curve: list[list[float]] = Field(
        description="up to 64 [last episode, mean lines, games] buckets of the learning curve"
    )
    best_evaluation: dict[str, Any] | None = Field(
        None,
        description="the periodic evaluation that chose the kept best checkpoint: mean_lines, "
        "ci95_low, ci95_high (null: no game ended, only a lower bound), games, ended, ...",
    )


class RunList(Schema):
    """A page of runs."""

    items: list[RunOut]
    count: int


class MetricsOut(Schema):
    """Metric points (downsampled when `total > max_points`) and the stored total."""

    points: list[dict[str, Any]]
    total: int


class ErrorOut(Schema):
    """What went wrong, in words."""

    error: str


class FieldErrorsOut(Schema):
    """One message per bad field; nothing was created."""

    errors: dict[str, str]


@router.get("/runs/", response=RunList)
def list_runs(
    request: HttpRequest, status: Run.Status | None = None, limit: int = 50, offset: int = 0
) -> dict:
    """Runs the user may see, newest first."""
    runs = selectors.runs_visible_to(request.user)
    if status:
        runs = runs.filter(status=status)
    count = runs.count()
    # An offset past the end is an empty page, not an integer the database cannot hold.
    limit, offset = min(max(limit, 1), 500), min(max(offset, 0), count)
    return {"items": [run_summary(run) for run in runs[offset : offset + limit]], "count": count}


@router.post("/runs/", response={201: RunOut, 400: FieldErrorsOut, 429: ErrorOut, 503: ErrorOut})
def create_run(request: HttpRequest, body: RunIn) -> Status:
    """Create a run and queue it for the workers (429 past MAX_ACTIVE_RUNS_PER_USER, 503
    with no run left if the task queue is down)."""
    return Status(
        201, run_summary(services.run_create_and_start(owner=request.user, **body.dict()))
    )


@router.get("/runs/{run_id}/", response={200: RunOut, 404: ErrorOut})
def get_run(request: HttpRequest, run_id: int) -> dict:
    """One run."""
    return run_summary(selectors.run_for_viewer(request.user, run_id))


class RunPatch(Schema):
    """Fields the owner may change."""

    visibility: str = Field(..., description="private or public")


@router.patch(
    "/runs/{run_id}/", response={200: RunOut, 400: FieldErrorsOut, 403: ErrorOut, 404: ErrorOut}
)
def update_run(request: HttpRequest, run_id: int, body: RunPatch) -> dict:
    """Change a run's visibility (owner only)."""
    run = selectors.run_for_viewer(request.user, run_id)
    return run_summary(
        services.run_set_visibility(run=run, user=request.user, visibility=body.visibility)
    )


@router.delete("/runs/{run_id}/", response={204: None, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut})
def delete_run(request: HttpRequest, run_id: int) -> Status:
    """Delete a run with its metrics and checkpoint files (owner only; 409 while a worker
    holds it: stop it first)."""
    run = selectors.run_for_viewer(request.user, run_id)
    services.run_delete(run=run, user=request.user)
    return Status(204, None)


@router.post(
    "/runs/{run_id}/stop", response={200: RunOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}
)
def stop_run(request: HttpRequest, run_id: int) -> dict:
    """Ask the run to checkpoint and stop."""
    run = selectors.run_for_viewer(request.user, run_id)
    return run_summary(services.run_stop(run=run, user=request.user))


@router.post(
    "/runs/{run_id}/resume",
    response={
        200: RunOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        429: ErrorOut,
        503: ErrorOut,
    },
)
def resume_run(request: HttpRequest, run_id: int) -> dict:
    """Queue a stopped or failed run again, from its last checkpoint."""
    with transaction.atomic():
        run = selectors.run_for_viewer(request.user, run_id)
        return run_summary(services.run_resume(run=run, user=request.user))


@router.get("/runs/{run_id}/metrics", response={200: MetricsOut, 404: ErrorOut})
def run_metrics(request: HttpRequest, run_id: int, max_points: int = 1500) -> dict:
    """The run's metric points, downsampled on the server to at most `max_points`."""
    run = selectors.run_for_viewer(request.user, run_id)
    points, total = selectors.run_metric_points(run, max_points=min(max(max_points, 2), 100_000))
    return {"points": points, "total": total}


class EvaluationIn(Schema):
    """A requested evaluation: greedy games of one of the run's policies."""

    games: int = Field(20, description="games on the evaluation seeds (1 to 10,000)")
    piece_cap: int = Field(0, description="pieces after which a game is cut (0 = none)")
    checkpoint: Literal["best", "latest"] = Field(
        "best", description="the best-evaluated policy, or the latest checkpoint"
    )


class EvaluationList(Schema):
    """A run's evaluations, oldest first."""

    evaluations: list[dict[str, Any]]


@router.get("/runs/{run_id}/evaluations", response={200: EvaluationList, 404: ErrorOut})
def run_evaluations(request: HttpRequest, run_id: int) -> dict:
    """The run's evaluations: periodic ones from training and requested ones, with intervals."""
    run = selectors.run_for_viewer(request.user, run_id)
    return {"evaluations": [evaluation_summary(e) for e in selectors.run_evaluations(run)]}


@router.post(
    "/runs/{run_id}/evaluations",
    response={202: dict[str, Any], 400: FieldErrorsOut, 403: ErrorOut, 404: ErrorOut},
)
def start_evaluation(request: HttpRequest, run_id: int, body: EvaluationIn) -> Status:
    """Evaluate the run's policy on the `evaluate` workers; answers the evaluation, running."""
    run = selectors.run_for_viewer(request.user, run_id)
    checkpoint = selectors.latest_checkpoint(run) if body.checkpoint == "latest" else None
    evaluation = services.evaluation_start(
        run=run,
        user=request.user,
        games=body.games,
        piece_cap=body.piece_cap,
        checkpoint=checkpoint,
    )
    return Status(202, evaluation_summary(evaluation))


@router.get("/runs/{run_id}/export.csv", response={200: None, 404: ErrorOut})
def export_csv(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    """Every metric row of the run as CSV."""
    run = selectors.run_for_viewer(request.user, run_id)
    return export_response(
        request,
        metrics_csv_lines(run),
        content_type="text/csv",
        filename=f"run-{run.pk}-metrics.csv",
    )
