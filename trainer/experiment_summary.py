"""An experiment's statistics: per configuration, the IQM of its runs' final scores with a
95% stratified-bootstrap interval, its learning curve as the IQM across seeds with a 95%
band, a ranking, and the probability of improvement between configurations
(`trainer.rl.aggregate` has the definitions). Computed on the server from the database,
never in the browser.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from django.db.models import Avg, F, IntegerField, Max
from django.db.models.functions import Cast

from trainer.exporting import evaluation_summary
from trainer.models import Evaluation, Experiment, Metric, Run
from trainer.rl import aggregate

# The learning curves are cut into this many buckets of pieces placed at most.
CURVE_POINTS = 50
BOOTSTRAP_RESAMPLES = 2_000


def final_score(run: Run) -> float | None:
    """The run's final evaluation's mean lines per game, once done; when no game ended
    before the piece cap, its 95% lower bound (the games' mean then lies below it)."""
    evaluation = run.final_evaluation
    if evaluation is None or evaluation.status != Evaluation.Status.DONE:
        return None
    if evaluation.ci95_high is None:
        return evaluation.ci95_low
    return evaluation.mean_lines


@dataclasses.dataclass(frozen=True)
class RunCurves:
    """Runs' learning curves on one grid of pieces placed: `values[run id]` holds, per
    bucket of `width` pieces, the mean lines of the games that ended in it (NaN where
    none did)."""

    width: int
    x: list[int]
    values: dict[int, np.ndarray]


def run_curves(runs: list[Run]) -> RunCurves:
    """The runs' curves in one grouped query, on CURVE_POINTS buckets of pieces placed."""
    ids = [run.pk for run in runs]
    metrics = Metric.objects.filter(run_id__in=ids)
    top = metrics.aggregate(top=Max("total_pieces"))["top"] or 0
    width = _nice_width(max(1, -(-top // CURVE_POINTS)))
    points = max(1, -(-top // width))
    values = {run_id: np.full(points, np.nan) for run_id in ids}
    rows = (
        metrics.annotate(bucket=Cast((F("total_pieces") - 1) / width, IntegerField()))
        .values("run_id", "bucket")
        .annotate(mean=Avg("lines"))
        .order_by()
    )
    for row in rows.iterator(chunk_size=5000):
        bucket = min(max(row["bucket"], 0), points - 1)
        values[row["run_id"]][bucket] = row["mean"]
    return RunCurves(width, [width * (index + 1) for index in range(points)], values)


def _nice_width(width: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at least `width`: round tick marks."""
    power = 10 ** max(0, len(str(width)) - 1)
    for step in (1, 2, 5, 10):
        if step * power >= width:
            return step * power
    return 10 * power


def _number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def experiment_summary(experiment: Experiment) -> dict:
    """The experiment with, per configuration, its runs, the IQM of their final scores
    with its 95% stratified-bootstrap interval, and its learning curve as the IQM across
    seeds with a 95% band; a ranking by the interval's lower bound, and the probability of
    improvement of one configuration over another (rliable's definitions)."""
    trials = list(experiment.trial_set.order_by("number"))
    runs = list(
        Run.objects.filter(experiment=experiment)
        .select_related("final_evaluation")
        .order_by("trial_id", "seed_index")
    )
    curves = run_curves(runs)
    configurations, finals = [], {}
    for trial in trials:
        mine = [run for run in runs if run.trial_id == trial.pk]
        scores = [score for score in map(final_score, mine) if score is not None]
        entry: dict[str, Any] = {
            "trial": trial.number,
            "state": trial.state,
            "error": trial.error,
            "params": trial.params,
            "config": {**experiment.config, **trial.params},
            "runs": [run.pk for run in mine],
            "seeds": [_seed_entry(run) for run in mine],
            "evaluated": len(scores),
            # Runs whose final evaluation ended no game before the piece cap: their score is
            # only a lower bound, and so is any statistic over them.
            "censored": sum(
                1
                for run in mine
                if final_score(run) is not None and run.final_evaluation.ci95_high is None
            ),
            "iqm": None,
            "ci95_low": None,
            "ci95_high": None,
            "curve": _curve_entry(curves, mine),
        }
        if scores:
            figures = aggregate.aggregate(scores, resamples=BOOTSTRAP_RESAMPLES, seed=trial.number)
            entry.update(iqm=figures.iqm, ci95_low=figures.ci95_low, ci95_high=figures.ci95_high)
            finals[trial.number] = np.asarray(scores, dtype=float)
        configurations.append(entry)
    scored = [entry for entry in configurations if entry["iqm"] is not None]
    # Configurations with every seed evaluated first: one run's interval has no width, and
    # must not outrank a complete configuration's.
    ranking = sorted(
        scored,
        key=lambda entry: (entry["state"] != "complete", -entry["ci95_low"], -entry["iqm"]),
    )
    return {
        "id": experiment.pk,
        "name": experiment.name,
        "owner": experiment.owner.get_username(),
        "visibility": experiment.visibility,
        "status": experiment.status,
        "preset": experiment.preset,
        "base_config": experiment.config,
        "grid": experiment.grid,
        "space": experiment.space,
        "sampler": experiment.sampler,
        "pruner": experiment.pruner or "none",
        "trials": experiment.trials,
        "seeds": experiment.seeds,
        "parallel": experiment.parallel,
        "eval_games": experiment.eval_games,
        "eval_piece_cap": experiment.eval_piece_cap,
        "created_at": experiment.created_at.isoformat(),
        "finished_at": experiment.finished_at.isoformat() if experiment.finished_at else None,
        "x": "pieces placed",
        "configurations": configurations,
        "ranking": [entry["trial"] for entry in ranking],
        "improvement": _improvements([entry["trial"] for entry in ranking], finals),
    }


def _seed_entry(run: Run) -> dict:
    evaluation = run.final_evaluation
    return {
        "run": run.pk,
        "seed": run.seed,
        "status": run.status,
        "pruned": run.pruned,
        "total_pieces": run.total_pieces,
        "evaluation": evaluation_summary(evaluation) if evaluation is not None else None,
    }


def _curve_entry(curves: RunCurves, runs: list[Run]) -> dict:
    rows = [curves.values[run.pk] for run in runs]
    if not rows:
        return {"x": [], "iqm": [], "low": [], "high": [], "n": []}
    band = aggregate.iqm_curve(np.vstack(rows), resamples=BOOTSTRAP_RESAMPLES)
    # Buckets in which none of the runs ended a game are left out, not drawn as zero.
    kept = np.flatnonzero(band.n)
    return {
        "x": [curves.x[index] for index in kept],
        "iqm": [_number(band.iqm[index]) for index in kept],
        "low": [_number(band.low[index]) for index in kept],
        "high": [_number(band.high[index]) for index in kept],
        "n": [int(band.n[index]) for index in kept],
    }


# Past this many scored configurations, only the best is compared with each of the others.
FULL_IMPROVEMENT_MATRIX = 8


def _improvements(ranked: list[int], finals: dict[int, np.ndarray]) -> list[dict]:
    pairs = [(x, y) for x in ranked for y in ranked if x != y]
    if len(ranked) > FULL_IMPROVEMENT_MATRIX:
        pairs = [(ranked[0], y) for y in ranked[1:]]
    found = []
    for x, y in pairs:
        low, high = aggregate.probability_of_improvement_ci(
            finals[x], finals[y], resamples=BOOTSTRAP_RESAMPLES
        )
        found.append(
            {
                "x": x,
                "y": y,
                "probability": aggregate.probability_of_improvement(finals[x], finals[y]),
                "ci95_low": low,
                "ci95_high": high,
            }
        )
    return found


def experiment_figures(experiment: Experiment) -> dict:
    """The statistics as the scheduler last stored them, with the status and visibility as
    they are now;
    computed here if the scheduler has not stored any yet."""
    experiment.refresh_from_db()
    summary = dict(experiment.summary) or experiment_summary(experiment)
    summary["status"] = experiment.status
    summary["visibility"] = experiment.visibility
    summary["finished_at"] = experiment.finished_at.isoformat() if experiment.finished_at else None
    return summary


def experiment_brief(experiment: Experiment) -> dict:
    """An experiment for a list: who, what, and its best configuration's figures."""
    summary = experiment.summary or {}
    ranking = summary.get("ranking") or []
    best = None
    if ranking:
        top = next(c for c in summary["configurations"] if c["trial"] == ranking[0])
        shown = ("trial", "params", "iqm", "ci95_low", "ci95_high", "evaluated", "censored")
        best = {key: top.get(key) for key in shown}
    return {
        "id": experiment.pk,
        "name": experiment.name,
        "owner": experiment.owner.get_username(),
        "visibility": experiment.visibility,
        "status": experiment.status,
        "sampler": experiment.sampler,
        "trials": experiment.trials,
        "seeds": experiment.seeds,
        "created_at": experiment.created_at.isoformat(),
        "finished_at": experiment.finished_at.isoformat() if experiment.finished_at else None,
        "best": best,
    }
