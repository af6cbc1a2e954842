"""The experiment pages: the list, the new-experiment form, and one experiment's figures.

Thin adapters over `trainer.experiments`. The experiment page renders the statistics the
scheduler stored (`trainer.experiment_summary`); static/js/experiment.js draws them, and
draws them again on each update from the experiment's WebSocket.
"""

from __future__ import annotations

import math
from decimal import Decimal

from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from trainer import experiments, selectors, services
from trainer.experiment_summary import experiment_figures
from trainer.models import Experiment
from trainer.queues import QueueUnavailable
from trainer.rl.confidence import iqm_text
from trainer.rl.config import ConfigError, TrainConfig
from visualizer.compare import PALETTE, setting_text
from visualizer.forms import ExperimentForm, allowed_values, doc_html

EXPERIMENT_LIST_LIMIT = 200


def params_text(params: dict) -> str:
    """A configuration's swept settings as the pages write them, `lr=0.0002315, gamma=0.99`:
    a sampled float to four significant digits (static/js/experiment.js writes the same)."""
    return ", ".join(f"{name}={_value_text(value)}" for name, value in params.items())


def _value_text(value: object) -> str:
    if not isinstance(value, float) or value.is_integer() or not math.isfinite(value):
        return setting_text(value)
    rounded = float(f"{value:.4g}")
    return setting_text(rounded) if rounded.is_integer() else f"{Decimal(repr(rounded)):,f}"


def configuration_score(configuration: dict | None) -> str:
    """A configuration's final score: the IQM of its runs with its interval; a dash if none."""
    if configuration is None:
        return iqm_text(None, None, None, 0)
    return iqm_text(
        configuration["iqm"],
        configuration["ci95_low"],
        configuration["ci95_high"],
        configuration["evaluated"],
        configuration.get("censored", 0),  # figures stored before runs at the cap were counted
    )


def best_configuration(summary: dict) -> dict | None:
    """The configuration ranked first (by the lower bound of its interval), if any."""
    ranking = summary.get("ranking") or []
    by_trial = {entry["trial"]: entry for entry in summary.get("configurations", [])}
    return by_trial.get(ranking[0]) if ranking else None


@require_GET
def experiment_list(request: HttpRequest) -> HttpResponse:
    """The experiments the user may see, each with its best configuration's score."""
    found = experiments.experiments_visible_to(request.user).annotate(run_count=Count("runs"))
    rows = []
    for experiment in found[:EXPERIMENT_LIST_LIMIT]:
        best = best_configuration(experiment.summary or {})
        rows.append(
            {
                "experiment": experiment,
                "best_params": params_text(best["params"]) if best else "",
                "best_score": configuration_score(best),
            }
        )
    return render(request, "visualizer/experiments.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
def experiment_new(request: HttpRequest) -> HttpResponse:
    """The new-experiment form; a valid one creates the experiment, then shows it."""
    form = ExperimentForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            experiment = experiments.experiment_create(
                owner=request.user, **form.experiment_fields()
            )
        except ConfigError as error:
            form.add_experiment_errors(error.errors)
        except services.LimitReached as error:
            form.add_error(None, str(error))
            status = 429
        except QueueUnavailable:
            form.add_error(None, "the task queue is unavailable: nothing was created; try again")
            status = 503
        else:
            return redirect("experiment-detail", experiment_id=experiment.pk)
    context = {"form": form, "settings_reference": _settings_reference()}
    return render(request, "visualizer/experiment_new.html", context, status=status)


def _settings_reference() -> list[dict]:
    """Every setting the base settings and the grid may name, with what it allows."""
    return [
        {"name": spec["name"], "doc": doc_html(spec["doc"]), "allowed": allowed_values(spec)}
        for spec in TrainConfig.field_specs()
    ]


def _experiment_or_404(request: HttpRequest, experiment_id: int) -> Experiment:
    try:
        return experiments.experiment_for_viewer(request.user, experiment_id)
    except experiments.ExperimentNotFound:
        raise Http404("experiment not found") from None


@require_GET
def experiment_detail(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """One experiment: its configurations' curves and scores, ranked, kept live."""
    experiment = _experiment_or_404(request, experiment_id)
    page = {
        "socket_path": f"/ws/experiments/{experiment.pk}/",
        "login_url": reverse("login"),
        "run_url": reverse("run-detail", args=[0]),  # the page puts each run's id in place of 0
        "palette": PALETTE,
    }
    context = {
        "experiment": experiment,
        "figures": experiment_figures(experiment),
        "page": page,
        "can_stop": selectors.can_stop(request.user, experiment),
        "can_control": experiment.owner_id == request.user.pk,
    }
    return render(request, "visualizer/experiment_detail.html", context)


@require_POST
def experiment_stop(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """Stop an experiment (owner or staff); then its page."""
    experiment = _experiment_or_404(request, experiment_id)
    try:
        experiments.experiment_stop(experiment=experiment, user=request.user)
    except selectors.NotAllowed as error:
        context = {"title": "This experiment cannot be stopped", "message": str(error)}
        return render(request, "visualizer/unavailable.html", context, status=403)
    return redirect("experiment-detail", experiment_id=experiment.pk)


@require_POST
def experiment_visibility(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """Make an experiment and its runs public or private (owner only); then its page."""
    experiment = _experiment_or_404(request, experiment_id)
    try:
        experiments.experiment_set_visibility(
            experiment=experiment, user=request.user, visibility=request.POST.get("visibility", "")
        )
    except (selectors.NotAllowed, ConfigError) as error:
        context = {"title": "Who may see this experiment was not changed", "message": str(error)}
        return render(request, "visualizer/unavailable.html", context, status=403)
    return redirect("experiment-detail", experiment_id=experiment.pk)
