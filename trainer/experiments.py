"""Experiments: create, advance and stop them, and their statistics across seeds.

An experiment trains configurations of a base config, each on `seeds` seeds, as ordinary
runs on the `training` queue. `experiment_advance` is its scheduler, called by every
worker's sweep and after each create: it keeps at most `parallel` of its runs queued or
running, resumes a run whose worker was lost, evaluates each finished run on the
evaluation seeds, prunes, asks the sampler for the next configuration, and stores the
statistics. Its state is in the database only (experiment, trials, runs): each decision
rebuilds Optuna's study from those rows, so a restart of everything loses nothing, and
unique constraints (one trial per number, one run per trial and seed) mean no
configuration and no seed of one is ever started twice, whoever advances at once.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import random
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Max, QuerySet
from django.utils import timezone

from live import bridge
from live.names import experiment_group
from live.protocol import ExperimentUpdate
from trainer import queues, services
from trainer.experiment_summary import (
    CURVE_POINTS,
    RunCurves,
    experiment_summary,
    final_score,
    run_curves,
)
from trainer.models import Evaluation, Experiment, ExperimentTrial, InvalidTransition, Run
from trainer.rl import aggregate
from trainer.rl.config import ConfigError, TrainConfig
from trainer.selectors import NotAllowed, best_checkpoint, visible_to

log = logging.getLogger(__name__)

MAX_SEEDS = 20
MAX_PARALLEL = 64
MAX_GRID_VALUES = 50
DEFAULT_RANDOM_TRIALS = 10
DEFAULT_EVAL_GAMES = 20
# Final evaluations cut games at this many pieces by default (0 = none): an agent that
# learned well must not hold the evaluate workers for hours.
DEFAULT_EVAL_PIECE_CAP = 100_000
# A run whose worker was lost or shut down is resumed from its checkpoint this many times
# at most.
MAX_RETRIES = 5
# Lost-worker reasons (`services.run_reap`, `services.runs_end_unstopped`): not the run's fault.
LOST_WORKER = ("worker lost", "did not stop within")
# Settings an experiment sets for each run itself.
OWN_FIELDS = frozenset({"seed"})


class ExperimentNotFound(Exception):
    """No such experiment, or one the user may not see (the two are not told apart)."""


# --- reads and access (the same rules as runs) ---


def experiments_visible_to(user: AbstractBaseUser) -> QuerySet[Experiment]:
    """Experiments the user may see, by the rules of runs."""
    return visible_to(user, Experiment.objects.all())


def experiment_for_viewer(user: AbstractBaseUser, experiment_id: int) -> Experiment:
    """The experiment, if the user may see it; else ExperimentNotFound."""
    experiment = experiments_visible_to(user).filter(pk=experiment_id).first()
    if experiment is None:
        raise ExperimentNotFound(f"experiment {experiment_id} not found")
    return experiment


# --- create ---


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One swept setting: a list of values (`choices`) or a range (`low`..`high`)."""

    field: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    def distribution(self) -> Any:
        """Optuna's distribution of this setting."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.choices is not None:
            return CategoricalDistribution(self.choices)
        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.log)


def dimensions(experiment: Experiment) -> list[Dimension]:
    """The experiment's swept settings, grid lists first, in a stable order."""
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    found = [Dimension(name, choices=tuple(values)) for name, values in experiment.grid.items()]
    for name, spec in experiment.space.items():
        if "choices" in spec:
            found.append(Dimension(name, choices=tuple(spec["choices"])))
        else:
            integer = fields[name].type in ("int", int)
            found.append(
                Dimension(
                    name, low=spec["low"], high=spec["high"], log=spec["log"], integer=integer
                )
            )
    return found


def _budget_errors(config: TrainConfig) -> str:
    if config.max_minutes > 0 or config.max_pieces > 0:
        return ""
    return "each run needs a finite budget: set max_minutes or max_pieces above 0"


def _check_value(
    preset: str, base: dict, field: str, value: object, errors: dict, key: str
) -> object:
    """The value as the config stores it; an error under `key` if it cannot run."""
    try:
        config = TrainConfig.from_preset(preset, {**base, field: value})
    except ConfigError as error:
        errors[key] = error.errors.get(field) or "; ".join(
            f"with it, {name}: {message}" for name, message in error.errors.items()
        )
        return None
    budget = _budget_errors(config)
    if budget:
        errors[key] = budget
    return getattr(config, field)


def _clean_grid(preset: str, base: dict, grid: object, errors: dict) -> dict:
    if not isinstance(grid, dict):
        errors["grid"] = "must be an object of setting names to lists of values"
        return {}
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    clean = {}
    for name, values in grid.items():
        key = f"grid.{name}"
        if name not in fields:
            errors[key] = "unknown setting"
        elif name in OWN_FIELDS:
            errors[key] = "the experiment sets each run's seed itself: use `seeds`"
        elif not isinstance(values, list) or not values:
            errors[key] = "must be a non-empty list of values"
        elif len(values) > MAX_GRID_VALUES:
            errors[key] = f"must have at most {MAX_GRID_VALUES} values, got {len(values)}"
        else:
            stored = [_check_value(preset, base, name, value, errors, key) for value in values]
            if key not in errors:
                if len(set(map(repr, stored))) != len(stored):
                    errors[key] = "lists a value twice"
                clean[name] = stored
    return clean


def _clean_space(preset: str, base: dict, space: object, errors: dict) -> dict:
    if not isinstance(space, dict):
        errors["space"] = (
            'must be an object like {"lr": {"low": 1e-4, "high": 1e-2, "log": true}} '
            'or {"features": {"choices": ["bcts", "classic"]}}'
        )
        return {}
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    clean = {}
    for name, spec in space.items():
        key = f"space.{name}"
        if name not in fields:
            errors[key] = "unknown setting"
            continue
        if name in OWN_FIELDS:
            errors[key] = "the experiment sets each run's seed itself: use `seeds`"
            continue
        if not isinstance(spec, dict):
            errors[key] = 'must be {"low": a, "high": b, "log": false} or {"choices": [...]}'
            continue
        if "choices" in spec:
            choices = spec["choices"]
            if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
                errors[key] = '"choices" must be a non-empty list, alone'
                continue
            stored = [_check_value(preset, base, name, value, errors, key) for value in choices]
            if key not in errors:
                clean[name] = {"choices": stored}
            continue
        if not {"low", "high"} <= set(spec) <= {"low", "high", "log"}:
            errors[key] = 'a range takes "low", "high" and optionally "log"'
            continue
        field = fields[name]
        low, high, log_scale = spec["low"], spec["high"], spec.get("log", False)
        if field.type not in ("int", "float", int, float):
            errors[key] = f"{name} is not a number: give its values as choices"
        elif not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            errors[key] = '"low" and "high" must be numbers'
        elif not isinstance(log_scale, bool):
            errors[key] = '"log" must be true or false'
        elif not low < high:
            errors[key] = f"is an empty range: low ({low}) must be below high ({high})"
        elif log_scale and low <= 0:
            errors[key] = f"a log range must start above 0, got low {low}"
        else:
            ends = [_check_value(preset, base, name, value, errors, key) for value in (low, high)]
            if key not in errors:
                clean[name] = {"low": ends[0], "high": ends[1], "log": log_scale}
    return clean


# Past this many combinations of swept values, only the first are checked at create; a
# configuration that cannot run then fails alone, saying why.
MAX_CHECKED_COMBINATIONS = 4_096


def _check_combinations(preset: str, base: dict, grid: dict, space: dict, errors: dict) -> None:
    """The first combination of swept values that cannot run together (lr_final above lr,
    no budget left), as an error on `grid` or `space`: each passed on its own."""
    axes = {name: values for name, values in grid.items()}
    for name, spec in space.items():
        axes[name] = spec["choices"] if "choices" in spec else [spec["low"], spec["high"]]
    combinations = itertools.product(*axes.values())
    for values in itertools.islice(combinations, MAX_CHECKED_COMBINATIONS):
        combination = dict(zip(axes, values, strict=True))
        try:
            problem = _budget_errors(TrainConfig.from_preset(preset, {**base, **combination}))
        except ConfigError as error:
            problem = str(error)
        if problem:
            shown = ", ".join(f"{key}={value}" for key, value in combination.items())
            key = "grid" if set(combination) <= set(grid) else "space"
            errors[key] = f"the settings {shown} cannot run together: {problem}"
            return


def _int_in(value: object, low: int, high: int, name: str, errors: dict) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[name] = f"must be an integer from {low:,} to {high:,}, got {value!r}"[:300]
        return low
    return value


def experiment_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    preset: str = "quick",
    config: dict | None = None,
    grid: dict | None = None,
    space: dict | None = None,
    sampler: str | None = None,
    trials: int | None = None,
    seeds: int = 3,
    parallel: int = 2,
    pruner: str | None = None,
    visibility: str = Run.Visibility.PRIVATE,
    eval_games: int = DEFAULT_EVAL_GAMES,
    eval_piece_cap: int = DEFAULT_EVAL_PIECE_CAP,
) -> Experiment:
    """Validate and store an experiment, then start its first runs once it commits.

    ConfigError names every bad field (`config.lr`, `grid.lr`, `space.gamma`, `trials`,
    ...), and then nothing is created.
    """
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name or len(name) > 200 or "\x00" in name:
        errors["name"] = "must be 1 to 200 characters, without NUL"
    if visibility not in Run.Visibility.values:
        errors["visibility"] = f"must be one of {', '.join(Run.Visibility.values)}"
    base = config if config is not None else {}
    if not isinstance(base, dict):
        errors["config"] = "must be an object of setting names to values"
        base = {}
    base = {key: value for key, value in base.items()}
    for own in OWN_FIELDS & set(base):
        errors[f"config.{own}"] = "the experiment sets each run's seed itself: use `seeds`"
        base.pop(own)
    try:
        base_config = TrainConfig.from_preset(preset or "quick", base)
    except ConfigError as error:
        # A setting's errors are `config.<name>`: some settings share a name with one of
        # the experiment's own fields (eval_games, eval_piece_cap).
        errors.update(
            {
                (name if name == "preset" else f"config.{name}"): message
                for name, message in error.errors.items()
            }
        )
        base_config = None
    if base_config is not None:
        budget = _budget_errors(base_config)
        if budget:
            errors["config.max_minutes"] = budget
    grid = _clean_grid(preset, base, grid if grid is not None else {}, errors)
    space = _clean_space(preset, base, space if space is not None else {}, errors)
    for name_ in set(grid) & set(space):
        errors[f"space.{name_}"] = "is in the grid already"
    sampler = sampler or (Experiment.Sampler.TPE if space else Experiment.Sampler.GRID)
    if sampler not in Experiment.Sampler.values:
        errors["sampler"] = f"must be one of {', '.join(Experiment.Sampler.values)}"
    elif sampler == Experiment.Sampler.GRID and space:
        errors["sampler"] = "the grid sampler takes lists (`grid`) only: ranges need random or tpe"
    pruner = "" if pruner in (None, "none") else pruner
    if pruner not in Experiment.Pruner.values:
        errors["pruner"] = "must be none, median or successive_halving"
    seeds = _int_in(seeds, 1, MAX_SEEDS, "seeds", errors)
    parallel = _int_in(parallel, 1, MAX_PARALLEL, "parallel", errors)
    active_cap = settings.MAX_ACTIVE_RUNS_PER_USER
    if "parallel" not in errors and active_cap and parallel > active_cap:
        errors["parallel"] = (
            f"must be at most {active_cap}, the runs one user may have queued or running at "
            "once (MAX_ACTIVE_RUNS_PER_USER); an experiment's runs count among them"
        )
    eval_games = _int_in(eval_games, 1, services.MAX_EVALUATION_GAMES, "eval_games", errors)
    eval_piece_cap = _int_in(
        eval_piece_cap, 0, services.MAX_EVALUATION_PIECE_CAP, "eval_piece_cap", errors
    )
    if not errors:
        _check_combinations(preset, base, grid, space, errors)
    if sampler in (Experiment.Sampler.RANDOM, Experiment.Sampler.TPE) and not (grid or space):
        errors["space"] = f"the {sampler} sampler needs settings to sample: a space or a grid"
    grid_size = math.prod(len(values) for values in grid.values())
    if trials is None:
        trials = grid_size if sampler == Experiment.Sampler.GRID else DEFAULT_RANDOM_TRIALS
    cap = settings.MAX_EXPERIMENT_TRIALS
    trials = _int_in(trials, 1, cap, "trials", errors)
    only_lists = all("choices" in spec for spec in space.values())
    choices = grid_size * math.prod(len(spec.get("choices", ())) or 1 for spec in space.values())
    if "trials" not in errors and sampler == Experiment.Sampler.GRID and trials > grid_size:
        errors["trials"] = f"the grid has {grid_size} configurations, fewer than {trials}"
    elif "trials" not in errors and only_lists and trials > choices:
        errors["trials"] = f"the lists allow {choices} configurations, fewer than {trials}"
    if "trials" not in errors and trials * seeds > settings.MAX_EXPERIMENT_RUNS:
        errors["trials"] = (
            f"{trials} configurations times {seeds} seeds is {trials * seeds} runs, more than "
            f"one experiment may have (MAX_EXPERIMENT_RUNS, {settings.MAX_EXPERIMENT_RUNS})"
        )
    if errors:
        raise ConfigError(errors)
    with transaction.atomic():
        experiment = Experiment.objects.create(
            owner=owner,
            name=name,
            visibility=visibility,
            preset=preset or "quick",
            config=base,
            grid=grid,
            space=space,
            sampler=sampler,
            sampler_seed=random.SystemRandom().randrange(2**31),
            trials=trials,
            seeds=seeds,
            parallel=parallel,
            pruner=pruner,
            eval_games=eval_games,
            eval_piece_cap=eval_piece_cap,
        )
        experiment_id = experiment.pk
        transaction.on_commit(lambda: _advance_quietly(experiment_id))
    return experiment


def _advance_quietly(experiment_id: int) -> None:
    # The experiment is stored: whatever fails here, the workers' sweep advances it later.
    try:
        experiment_advance(experiment_id=experiment_id)
    except queues.QueueUnavailable:
        log.warning("experiment %s: the queue is down; the sweep starts its runs", experiment_id)
    except Exception:
        log.exception("experiment %s: its first step failed; the sweep will retry", experiment_id)


# --- stop ---


def experiment_stop(*, experiment: Experiment, user: AbstractBaseUser) -> Experiment:
    """Stop an experiment (owner or staff): its runs stop through the ordinary stop path,
    and no configuration starts after them."""
    if not (user.is_authenticated and (user.is_staff or experiment.owner_id == user.pk)):
        raise NotAllowed("only the experiment's owner or staff can stop it")
    Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.RUNNING).update(
        status=Experiment.Status.STOPPED, finished_at=timezone.now()
    )
    for run in Run.objects.filter(experiment=experiment, status__in=Run.ACTIVE):
        if run.status != Run.Status.STOPPING:
            _stop_run(run)
    experiment.refresh_from_db()
    _summarize(experiment)
    return experiment


def experiment_set_visibility(
    *, experiment: Experiment, user: AbstractBaseUser, visibility: str
) -> Experiment:
    """Make an experiment and its runs public or private (owner only); viewers who lost
    access to it, or to one of its runs, are cut off at once."""
    if not (user.is_authenticated and experiment.owner_id == user.pk):
        raise NotAllowed("only the experiment's owner can change who may see it")
    if visibility not in Run.Visibility.values:
        raise ConfigError({"visibility": f"must be one of {', '.join(Run.Visibility.values)}"})
    # Each change is committed before its viewers are told to check their access again.
    Experiment.objects.filter(pk=experiment.pk).update(visibility=visibility)
    experiment.visibility = visibility
    for run in Run.objects.filter(experiment=experiment, owner=user):
        services.run_set_visibility(run=run, user=user, visibility=visibility)
    if visibility == Run.Visibility.PRIVATE:
        transaction.on_commit(
            lambda: bridge.publish_access_changed(experiment_group(experiment.pk))
        )
    return experiment


def _stop_run(run: Run) -> None:
    try:
        run.request_stop()
    except InvalidTransition:
        return
    services.publish_status(run, "stopped by its experiment")


# --- the scheduler ---


def experiments_advance() -> list[int]:
    """Advance every running experiment (the sweep), and bring up to date the figures of
    stopped ones whose runs are still ending; the ids of those advanced."""
    advanced = []
    for experiment_id in Experiment.objects.filter(status=Experiment.Status.RUNNING).values_list(
        "pk", flat=True
    ):
        try:
            if experiment_advance(experiment_id=experiment_id):
                advanced.append(experiment_id)
        except queues.QueueUnavailable:
            raise
        except Exception:
            # One experiment's fault must not hold up the others.
            log.exception("experiment %s: its scheduler's step failed", experiment_id)
    stopped = Experiment.objects.filter(status=Experiment.Status.STOPPED)
    ending = stopped.filter(runs__status__in=Run.ACTIVE).distinct()
    ended = stopped.annotate(last=Max("runs__finished_at")).filter(last__gt=F("summarized_at"))
    for experiment in {experiment.pk: experiment for experiment in [*ending, *ended]}.values():
        if _summary_due(experiment):
            _summarize(experiment)
    return advanced


def experiment_advance(*, experiment_id: int) -> bool:
    """One step of the experiment's scheduler; False if another process is at it now or
    it is not running. QueueUnavailable if the broker refused a run (it is undone)."""
    with transaction.atomic():
        # One scheduler at a time; another sweep skips it (PostgreSQL). SQLite runs one
        # writer at a time, and the unique constraints refuse a second start anyway.
        experiment = (
            Experiment.objects.select_for_update(skip_locked=True)
            .filter(pk=experiment_id, status=Experiment.Status.RUNNING)
            .first()
        )
        if experiment is None:
            return False
        try:
            with transaction.atomic():
                _advance(experiment)
        except IntegrityError:
            log.info("experiment %s: another process advanced it first", experiment_id)
            return False
    return True


def _advance(experiment: Experiment) -> None:
    runs = list(Run.objects.filter(experiment=experiment).select_related("final_evaluation"))
    changed = False
    for run in runs:
        changed |= _resume_if_lost(experiment, run)
        changed |= _evaluate_if_ended(experiment, run)
    trials = list(experiment.trial_set.order_by("number"))
    runs_by_trial: dict[int, list[Run]] = {}
    for run in runs:
        runs_by_trial.setdefault(run.trial_id, []).append(run)
    for trial in trials:
        if trial.state == ExperimentTrial.State.RUNNING:
            changed |= _complete_if_done(experiment, trial, runs_by_trial.get(trial.pk, []))
    # The curves come from every metric row of the runs: read them only so often.
    due = _summary_due(experiment)
    if experiment.pruner and due:
        changed |= _prune(experiment, trials, runs_by_trial, run_curves(runs))
    changed |= _start_runs(experiment, trials, runs_by_trial)
    if all(trial.state != ExperimentTrial.State.RUNNING for trial in trials) and (
        len(trials) >= experiment.trials
    ):
        experiment.status = Experiment.Status.FINISHED
        experiment.finished_at = timezone.now()
        experiment.save(update_fields=["status", "finished_at"])
        changed = True
    if changed or due:
        _summarize(experiment)


# The statistics are recomputed at most this often while nothing but curves changes, and
# never sooner than this many times what the last computation took: a large experiment's
# curves cannot keep the database busy.
SUMMARY_EVERY_SECONDS = 5.0
SUMMARY_TIME_FACTOR = 20


def _summary_due(experiment: Experiment) -> bool:
    if experiment.summarized_at is None:
        return True
    took = float((experiment.summary or {}).get("computed_seconds") or 0.0)
    wait = max(SUMMARY_EVERY_SECONDS, SUMMARY_TIME_FACTOR * took)
    return (timezone.now() - experiment.summarized_at).total_seconds() >= wait


def _interrupted(run: Run) -> bool:
    """Whether the run ended through no doing of its own or its owner's, and is to be
    resumed: its worker was lost, or shut down (a restart of everything)."""
    if run.pruned or run.retries >= MAX_RETRIES:
        return False
    if run.status == Run.Status.FAILED:
        return run.error.startswith(LOST_WORKER)
    return run.status == Run.Status.STOPPED and run.error.startswith(services.STOPPED_FOR_SHUTDOWN)


def _resume_if_lost(experiment: Experiment, run: Run) -> bool:
    """A run whose worker was lost or shut down goes back to the queue, from its
    checkpoint; True if so."""
    if not _interrupted(run):
        return False
    try:
        services.run_resume(run=run, user=experiment.owner)
    except (services.LimitReached, InvalidTransition):
        return False  # the owner's other runs hold the places, or they resumed it: next sweep
    Run.objects.filter(pk=run.pk).update(retries=F("retries") + 1)
    log.warning("experiment %s: run %s lost its worker; resumed it", experiment.pk, run.pk)
    return True


def _evaluate_if_ended(experiment: Experiment, run: Run) -> bool:
    """Start the final evaluation of a run that ended with a policy to evaluate; True if so."""
    if run.final_evaluation_id is not None or run.pruned:
        return False
    if run.status not in (Run.Status.FINISHED, Run.Status.STOPPED) or _interrupted(run):
        return False
    checkpoint = best_checkpoint(run)
    if checkpoint is None:
        return False
    evaluation = services.evaluation_start(
        run=run,
        user=experiment.owner,
        games=experiment.eval_games,
        piece_cap=experiment.eval_piece_cap,
        checkpoint=checkpoint,
    )
    run.final_evaluation = evaluation
    Run.objects.filter(pk=run.pk).update(final_evaluation=evaluation)
    return True


def _run_done(run: Run) -> bool:
    """Whether a run will change its configuration's figures no more."""
    if run.pruned:
        return run.status not in Run.ACTIVE
    if run.status in Run.ACTIVE or _interrupted(run):
        return False
    if run.status == Run.Status.FAILED:
        return True
    evaluation = run.final_evaluation
    if evaluation is None:
        return best_checkpoint(run) is None  # stopped before it had a policy
    return evaluation.status != Evaluation.Status.RUNNING


def _complete_if_done(experiment: Experiment, trial: ExperimentTrial, runs: list[Run]) -> bool:
    """End a configuration whose runs will change no more; True if it ended now."""
    if len(runs) < experiment.seeds or not all(_run_done(run) for run in runs):
        return False
    scores = [score for score in map(final_score, runs) if score is not None]
    if any(run.pruned for run in runs):
        trial.state = ExperimentTrial.State.PRUNED
    elif scores:
        trial.state = ExperimentTrial.State.COMPLETE
        trial.value = aggregate.iqm(scores)
    else:
        trial.state = ExperimentTrial.State.FAILED
    trial.finished_at = timezone.now()
    trial.save(update_fields=["state", "value", "finished_at"])
    return True


def _start_runs(
    experiment: Experiment, trials: list[ExperimentTrial], runs_by_trial: dict[int, list[Run]]
) -> bool:
    """Fill the experiment's places: the next seed of a started configuration first, then
    a new configuration from the sampler; True if a run started."""
    started = False
    active = Run.objects.filter(experiment=experiment, status__in=Run.ACTIVE).count()
    while active < experiment.parallel:
        trial = next(
            (
                t
                for t in trials
                if t.state == ExperimentTrial.State.RUNNING
                and len(runs_by_trial.get(t.pk, [])) < experiment.seeds
            ),
            None,
        )
        if trial is None:
            if len(trials) >= experiment.trials:
                return started
            trial = _ask(experiment, trials, runs_by_trial)
            trials.append(trial)
        taken = {run.seed_index for run in runs_by_trial.get(trial.pk, [])}
        seed_index = min(set(range(experiment.seeds)) - taken)
        try:
            run = _start_run(experiment, trial, seed_index)
        except services.LimitReached:
            return started  # the owner's cap: the next sweep tries again
        except ConfigError as error:
            # Settings that pass one by one but not together (lr_final above lr): this
            # configuration cannot run; the others go on.
            _fail_trial(trial, f"its settings cannot run: {error}")
            continue
        runs_by_trial.setdefault(trial.pk, []).append(run)
        active += 1
        started = True
    return started


def run_config(experiment: Experiment, trial: ExperimentTrial, seed_index: int) -> dict:
    """The settings over the preset of one seed of one configuration."""
    base = TrainConfig.from_preset(experiment.preset, experiment.config)
    return {**experiment.config, **trial.params, "seed": base.seed + seed_index}


def _fail_trial(trial: ExperimentTrial, reason: str) -> None:
    log.warning("experiment %s configuration %s: %s", trial.experiment_id, trial.number, reason)
    trial.state = ExperimentTrial.State.FAILED
    trial.error = reason[:10_000]
    trial.finished_at = timezone.now()
    trial.save(update_fields=["state", "error", "finished_at"])


def _start_run(experiment: Experiment, trial: ExperimentTrial, seed_index: int) -> Run:
    """Start one seed of a configuration; ConfigError if its settings cannot run, or
    leave the run without a finite budget."""
    config = run_config(experiment, trial, seed_index)
    budget = _budget_errors(TrainConfig.from_preset(experiment.preset, config))
    if budget:
        raise ConfigError({"max_minutes": budget})
    shown = ", ".join(f"{key}={value}" for key, value in trial.params.items())
    name = f"{experiment.name} · {shown or 'base'} · seed {seed_index + 1}"[:200]
    return services.run_create_and_start(
        owner=experiment.owner,
        name=name,
        preset=experiment.preset,
        config=config,
        visibility=experiment.visibility,
        experiment=experiment,
        trial=trial,
        seed_index=seed_index,
    )


# --- Optuna, rebuilt from the rows each time ---


def _study(experiment: Experiment, trials: list[ExperimentTrial], values: Mapping[int, dict]):
    """An in-memory Optuna study holding the experiment's trials, in number order, with
    their intermediate values (`values`: trial number -> {step: value})."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {dim.field: dim.distribution() for dim in dimensions(experiment)}
    states = {
        ExperimentTrial.State.RUNNING: optuna.trial.TrialState.RUNNING,
        ExperimentTrial.State.COMPLETE: optuna.trial.TrialState.COMPLETE,
        ExperimentTrial.State.PRUNED: optuna.trial.TrialState.PRUNED,
        ExperimentTrial.State.FAILED: optuna.trial.TrialState.FAIL,
    }
    study = optuna.create_study(direction="maximize", sampler=_sampler(experiment, len(trials)))
    for trial in trials:
        study.add_trial(
            optuna.trial.create_trial(
                state=states[trial.state],
                value=trial.value if trial.state == ExperimentTrial.State.COMPLETE else None,
                params=trial.params,
                distributions={name: distributions[name] for name in trial.params},
                system_attrs=trial.system_attrs,
                intermediate_values=values.get(trial.number, {}),
            )
        )
    return study


def _sampler(experiment: Experiment, number: int):
    import optuna

    if experiment.sampler == Experiment.Sampler.GRID:
        # The seed shuffles the grid, and trial n takes its n-th point: one order for all.
        grid = {field: list(values) for field, values in experiment.grid.items()}
        return optuna.samplers.GridSampler(grid, seed=experiment.sampler_seed)
    # The study is rebuilt for every ask, so the seed moves on with the trial number.
    seed = experiment.sampler_seed + number
    if experiment.sampler == Experiment.Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _ask(
    experiment: Experiment, trials: list[ExperimentTrial], runs_by_trial: dict[int, list[Run]]
) -> ExperimentTrial:
    """The sampler's next configuration, stored as a trial (its number: one past the last)."""
    study = _study(experiment, trials, {})
    asked = study.ask()
    for dim in dimensions(experiment):
        if dim.choices is not None:
            asked.suggest_categorical(dim.field, list(dim.choices))
        elif dim.integer:
            asked.suggest_int(dim.field, int(dim.low), int(dim.high), log=dim.log)
        else:
            asked.suggest_float(dim.field, dim.low, dim.high, log=dim.log)
    frozen = study.get_trials(deepcopy=False)[-1]
    params = {
        name: value.item() if isinstance(value, np.generic) else value
        for name, value in frozen.params.items()
    }
    return ExperimentTrial.objects.create(
        experiment=experiment,
        number=len(trials),
        params=params,
        system_attrs=_json_safe(frozen.system_attrs),
    )


def _json_safe(attrs: dict) -> dict:
    safe = {}
    for key, value in attrs.items():
        if isinstance(value, dict):
            value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
        safe[key] = value
    return safe


def _prune(
    experiment: Experiment,
    trials: list[ExperimentTrial],
    runs_by_trial: dict[int, list[Run]],
    curves: RunCurves,
) -> bool:
    """Stop the configurations whose curve lags, as Optuna's pruner decides; True if any."""
    import optuna

    values = {
        trial.number: _intermediate_values(runs_by_trial.get(trial.pk, []), curves)
        for trial in trials
    }
    study = _study(experiment, trials, values)
    if experiment.pruner == Experiment.Pruner.MEDIAN:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=CURVE_POINTS // 5)
    else:
        pruner = optuna.pruners.SuccessiveHalvingPruner()
    pruned = False
    for frozen, trial in zip(study.get_trials(deepcopy=False), trials, strict=True):
        if trial.state != ExperimentTrial.State.RUNNING or not frozen.intermediate_values:
            continue
        prune = pruner.prune(study, frozen)
        attrs = _json_safe(study.get_trials(deepcopy=False)[trial.number].system_attrs)
        if attrs != trial.system_attrs:  # the successive-halving pruner keeps its rungs there
            trial.system_attrs = attrs
            trial.save(update_fields=["system_attrs"])
        if prune:
            _prune_trial(trial, runs_by_trial.get(trial.pk, []))
            pruned = True
    return pruned


def _prune_trial(trial: ExperimentTrial, runs: list[Run]) -> None:
    log.info("experiment %s: pruned configuration %s", trial.experiment_id, trial.number)
    trial.state = ExperimentTrial.State.PRUNED
    trial.finished_at = timezone.now()
    trial.save(update_fields=["state", "finished_at"])
    for run in runs:
        Run.objects.filter(pk=run.pk).update(pruned=True)
        run.pruned = True
        if run.status in (Run.Status.QUEUED, Run.Status.RUNNING):
            _stop_run(run)


def _intermediate_values(runs: list[Run], curves: RunCurves) -> dict[int, float]:
    """A configuration's curve for the pruner: per bucket, the mean over its seeds."""
    rows = [curves.values[run.pk] for run in runs if run.pk in curves.values]
    if not rows:
        return {}
    matrix = np.vstack(rows)
    reached = ~np.isnan(matrix).all(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(matrix, axis=0)
    return {int(step): float(means[step]) for step in np.flatnonzero(reached)}


def _summarize(experiment: Experiment) -> dict:
    """Compute, store and publish the experiment's statistics."""
    started = time.perf_counter()
    summary = experiment_summary(experiment)
    summary["computed_seconds"] = round(time.perf_counter() - started, 3)
    experiment.summarized_at = timezone.now()
    Experiment.objects.filter(pk=experiment.pk).update(
        summary=summary, summarized_at=experiment.summarized_at
    )
    experiment.summary = summary
    bridge.publish(experiment_group(experiment.pk), ExperimentUpdate(summary))
    return summary
