"""The compare API: several runs' learning curves and evaluations side by side, and their
export."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Field, Query, Router, Schema
from ninja.errors import ValidationError

from trainer import selectors
from trainer.api import ErrorOut, FieldErrorsOut
from trainer.exporting import (
    comparison_csv_lines,
    comparison_json_chunks,
    evaluation_summary,
    export_response,
    run_summary,
)
from trainer.models import Run

router = Router(tags=["compare"])

DEFAULT_POINTS = 1000
MAX_POINTS = 20_000
RUNS_HELP = "run ids separated by commas, e.g. 1,2,3 (at most 20)"


class ComparedRunOut(Schema):
    """One compared run: its summary, stored row count and downsampled columns."""

    run: dict[str, Any]
    total: int = Field(..., description="metric rows stored for the run")
    points: dict[str, list[int | float | None]] = Field(
        ...,
        description="one list per column: episode, total_pieces and wall_time are the x-axes; "
        "lines_min and lines_max bound each bucket's lines",
    )
    evaluations: list[dict[str, Any]] = Field(
        ...,
        description="the run's evaluations, oldest first, each with its 95% interval "
        "(ci95_high null: no game ended before the cap, only a lower bound)",
    )


class ConfigRowOut(Schema):
    """One setting across the compared runs."""

    field: str
    values: list[Any]
    differs: bool


class CompareOut(Schema):
    """The compared runs in the order asked, and their settings side by side."""

    runs: list[ComparedRunOut]
    config: list[ConfigRowOut]
    max_points: int


def compared_runs(request: HttpRequest, runs: str) -> list[Run]:
    """The runs named in `runs` that the user may see all of; 400 or 404 otherwise."""
    try:
        run_ids = selectors.parse_run_ids(runs)
    except ValueError as error:
        raise ValidationError([{"loc": ("query", "runs"), "msg": str(error)}]) from None
    return selectors.runs_for_comparison(request.user, run_ids)


@router.get("/compare", response={200: CompareOut, 400: FieldErrorsOut, 404: ErrorOut})
def compare(
    request: HttpRequest,
    runs: str = Query(..., description=RUNS_HELP),
    max_points: int = Query(DEFAULT_POINTS, description="points per run, at most 20,000"),
) -> dict:
    """Several runs' metrics, each downsampled on the server to at most `max_points`."""
    chosen = compared_runs(request, runs)
    max_points = min(max(max_points, 2), MAX_POINTS)
    columns = selectors.runs_metric_columns(chosen, max_points=max_points)
    evaluations = selectors.runs_evaluations(chosen)
    return {
        "runs": [
            {
                "run": run_summary(run),
                **columns[run.pk],
                "evaluations": [evaluation_summary(e) for e in evaluations[run.pk]],
            }
            for run in chosen
        ],
        "config": selectors.config_differences(chosen),
        "max_points": max_points,
    }


@router.get("/compare/export.csv", response={200: None, 400: FieldErrorsOut, 404: ErrorOut})
def compare_export_csv(
    request: HttpRequest, runs: str = Query(..., description=RUNS_HELP)
) -> StreamingHttpResponse:
    """Every metric row of the compared runs as one CSV, a run_id column first."""
    chosen = compared_runs(request, runs)
    return export_response(
        request,
        comparison_csv_lines(chosen),
        content_type="text/csv",
        filename=f"{_file_stem(chosen)}.csv",
    )


@router.get("/compare/export.json", response={200: None, 400: FieldErrorsOut, 404: ErrorOut})
def compare_export_json(
    request: HttpRequest, runs: str = Query(..., description=RUNS_HELP)
) -> StreamingHttpResponse:
    """The compared runs and every metric row of each, as JSON."""
    chosen = compared_runs(request, runs)
    return export_response(
        request,
        comparison_json_chunks(chosen),
        content_type="application/json",
        filename=f"{_file_stem(chosen)}.json",
    )


def _file_stem(runs: list[Run]) -> str:
    return "compare-runs-" + "-".join(str(run.pk) for run in runs)
