"""The experiments API: create, list, read and stop experiments (thin adapters)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import ConfigDict

from trainer import experiments
from trainer.api import ErrorOut, FieldErrorsOut
from trainer.experiment_summary import experiment_brief, experiment_figures

router = Router(tags=["experiments"])


class ExperimentIn(Schema):
    """A new experiment: configurations of a preset plus `config`, each on `seeds` seeds.

    Every run needs a finite budget: the config's `max_minutes` or `max_pieces`."""

    # An unknown field is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200)
    preset: str = Field("quick", description="quick, standard or record")
    config: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig fields over the preset's, for every run"
    )
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="{field: [value, ...]}: the grid sampler trains every combination",
    )
    space: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='ranges {field: {"low": a, "high": b, "log": false}} or choices '
        '{field: {"choices": [...]}}, for the random and tpe samplers',
    )
    sampler: str | None = Field(
        None, description="grid, random or tpe (default: grid, or tpe with a space)"
    )
    trials: int | None = Field(
        None, description="configurations to train (default: the whole grid, or 10)"
    )
    seeds: int = Field(3, description="runs per configuration (1 to 20)")
    parallel: int = Field(2, description="runs queued or running at once")
    pruner: str | None = Field(None, description="none, median or successive_halving")
    visibility: str = Field("private", description="private or public")
    eval_games: int = Field(20, description="games of each run's final evaluation")
    eval_piece_cap: int = Field(
        100_000, description="pieces after which a final evaluation game is cut (0 = none)"
    )


class CurveOut(Schema):
    """A configuration's learning curve: the IQM across its seeds and its 95% band, per
    bucket of pieces placed (`x`: the bucket's end); `n`: runs with a value there."""

    x: list[int]
    iqm: list[float | None]
    low: list[float | None]
    high: list[float | None]
    n: list[int]


class ConfigurationOut(Schema):
    """One configuration: its settings, its runs, and the IQM of their final evaluations'
    mean lines with its 95% stratified-bootstrap interval (null until one is evaluated)."""

    trial: int
    state: str = Field(description="running, complete, pruned or failed")
    error: str = Field("", description="why a failed configuration could not run")
    params: dict[str, Any] = Field(description="the swept settings' values")
    config: dict[str, Any] = Field(description="every setting given over the preset")
    runs: list[int]
    seeds: list[dict[str, Any]]
    evaluated: int
    censored: int = Field(
        description="evaluated runs with no game ended before the piece cap: their scores, "
        "and so the IQM, are lower bounds"
    )
    iqm: float | None
    ci95_low: float | None
    ci95_high: float | None
    curve: CurveOut


class ExperimentOut(Schema):
    """An experiment and its statistics (trainer.experiment_summary)."""

    id: int
    name: str
    owner: str
    visibility: str
    status: str = Field(description="running, finished or stopped")
    preset: str
    base_config: dict[str, Any]
    grid: dict[str, Any]
    space: dict[str, Any]
    sampler: str
    pruner: str
    trials: int
    seeds: int
    parallel: int
    eval_games: int
    eval_piece_cap: int
    created_at: datetime
    finished_at: datetime | None
    x: str
    configurations: list[ConfigurationOut]
    ranking: list[int] = Field(description="trial numbers, highest interval lower bound first")
    improvement: list[dict[str, Any]] = Field(
        description="P(x > y) between configurations (rliable), with its 95% interval"
    )


class ExperimentBriefOut(Schema):
    """An experiment in a list: its best configuration's figures, without curves."""

    id: int
    name: str
    owner: str
    visibility: str
    status: str
    sampler: str
    trials: int
    seeds: int
    created_at: datetime
    finished_at: datetime | None
    best: dict[str, Any] | None


class ExperimentList(Schema):
    """A page of experiments."""

    items: list[ExperimentBriefOut]
    count: int


@router.get("/experiments/", response=ExperimentList)
def list_experiments(request: HttpRequest, limit: int = 50, offset: int = 0) -> dict:
    """Experiments the user may see, newest first."""
    found = experiments.experiments_visible_to(request.user)
    count = found.count()
    limit, offset = min(max(limit, 1), 500), min(max(offset, 0), count)
    return {"items": [experiment_brief(e) for e in found[offset : offset + limit]], "count": count}


@router.post(
    "/experiments/",
    response={201: ExperimentOut, 400: FieldErrorsOut, 429: ErrorOut, 503: ErrorOut},
)
def create_experiment(request: HttpRequest, body: ExperimentIn) -> Status:
    """Create an experiment and start its first runs (400 with a message per bad field,
    nothing created)."""
    experiment = experiments.experiment_create(owner=request.user, **body.dict())
    return Status(201, experiment_figures(experiment))


@router.get("/experiments/{experiment_id}/", response={200: ExperimentOut, 404: ErrorOut})
def get_experiment(request: HttpRequest, experiment_id: int) -> dict:
    """One experiment with its statistics, as of the scheduler's last step."""
    return experiment_figures(experiments.experiment_for_viewer(request.user, experiment_id))


class ExperimentPatch(Schema):
    """Fields the owner may change."""

    model_config = ConfigDict(extra="forbid")

    visibility: str = Field(..., description="private or public: the experiment and its runs")


@router.patch(
    "/experiments/{experiment_id}/",
    response={200: ExperimentOut, 400: FieldErrorsOut, 403: ErrorOut, 404: ErrorOut},
)
def update_experiment(request: HttpRequest, experiment_id: int, body: ExperimentPatch) -> dict:
    """Make an experiment and its runs public or private (owner only)."""
    experiment = experiments.experiment_for_viewer(request.user, experiment_id)
    experiments.experiment_set_visibility(
        experiment=experiment, user=request.user, visibility=body.visibility
    )
    return experiment_figures(experiment)


@router.post(
    "/experiments/{experiment_id}/stop",
    response={200: ExperimentOut, 403: ErrorOut, 404: ErrorOut},
)
def stop_experiment(request: HttpRequest, experiment_id: int) -> dict:
    """Stop the experiment's runs; no configuration starts after them."""
    experiment = experiments.experiment_for_viewer(request.user, experiment_id)
    return experiment_figures(experiments.experiment_stop(experiment=experiment, user=request.user))
