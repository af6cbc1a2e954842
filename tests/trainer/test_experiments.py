"""Experiments: validation, the scheduler's decisions, and the statistics it stores.

The scheduler is driven here by hand: runs are moved to their ends by writing their rows
as a worker would, so each decision can be checked. tests/faults/test_experiment_faults.py
runs experiments on real workers.
"""

from collections.abc import Callable
from datetime import timedelta

import pytest

from trainer import experiments, services
from trainer.models import Checkpoint, Evaluation, Experiment, ExperimentTrial, Metric, Run
from trainer.rl.config import ConfigError
from trainer.selectors import NotAllowed

pytestmark = pytest.mark.django_db

QUICK = {"max_minutes": 1.0, "frames_per_second": 0.0}


@pytest.fixture(autouse=True)
def _room_for_the_runs(settings: object) -> None:
    settings.MAX_ACTIVE_RUNS_PER_USER = 8


def create(owner: object, **fields: object) -> Experiment:
    body = {
        "name": "lr sweep",
        "preset": "quick",
        "config": dict(QUICK),
        "grid": {"lr": [0.001, 0.0003]},
        "seeds": 2,
        "parallel": 2,
    }
    body.update(fields)
    return experiments.experiment_create(owner=owner, **body)


def advance(experiment: Experiment) -> None:
    assert experiments.experiment_advance(experiment_id=experiment.pk)
    experiment.refresh_from_db()


def runs_of(experiment: Experiment) -> list[Run]:
    return list(Run.objects.filter(experiment=experiment).order_by("pk"))


def finish(run: Run, score: float, *, pieces: int = 1000, status: str = Run.Status.FINISHED):
    """End a run as its worker would, with a checkpoint, metrics, and (for `score`) a done
    final evaluation of that mean."""
    Run.objects.filter(pk=run.pk).update(status=status, total_pieces=pieces)
    checkpoint = Checkpoint.objects.create(
        run=run,
        kind="best",
        file=f"runs/{run.pk}/best.pt",
        episode=10,
        total_pieces=pieces,
        wall_time=1.0,
    )
    store_metrics(run, lambda n: int(score * n / 10))
    return checkpoint


def store_metrics(run: Run, lines: Callable[[int], int]) -> None:
    """Ten training games of 100 pieces each, game n clearing lines(n)."""
    Metric.objects.bulk_create(
        Metric(
            run=run,
            episode=n,
            lines=lines(n),
            score=0,
            pieces=100,
            reward=0.0,
            placements_per_second=1.0,
            total_pieces=100 * n,
            wall_time=float(n),
            extra={},
        )
        for n in range(1, 11)
    )


def complete_evaluation(run: Run, mean: float) -> None:
    run.refresh_from_db()
    assert run.final_evaluation_id, "the scheduler started no final evaluation"
    Evaluation.objects.filter(pk=run.final_evaluation_id).update(
        status=Evaluation.Status.DONE, mean_lines=mean, ci95_low=mean - 1, ci95_high=mean + 1
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"grid": {"lrr": [0.1]}}, "grid.lrr"),
        ({"grid": {"lr": []}}, "grid.lr"),
        ({"grid": {"lr": [5.0]}}, "grid.lr"),
        ({"space": {"lr": {"low": 0.01, "high": 0.001}}, "sampler": "tpe"}, "space.lr"),
        ({"space": {"gamma": {"low": 0.9, "high": 0.99}}, "sampler": "grid"}, "sampler"),
        ({"config": {"max_minutes": 0.0}}, "config.max_minutes"),
        ({"config": {"max_minutes": 0.0, "max_episodes": 100}}, "config.max_minutes"),
        ({"grid": {"max_minutes": [1.0, 0.0]}}, "grid.max_minutes"),
        ({"trials": 3}, "trials"),
        ({"sampler": "random", "trials": 10_000}, "trials"),
        ({"seeds": 0}, "seeds"),
        ({"parallel": "two"}, "parallel"),
        ({"pruner": "hyperband"}, "pruner"),
        ({"config": {"seed": 3}}, "config.seed"),
        ({"config": {"bogus": 1}}, "config.bogus"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_input_names_its_field_and_creates_nothing(
    user: object, fields: dict, field: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        create(user, **fields)
    assert field in raised.value.errors, raised.value.errors
    assert not Experiment.objects.exists() and not Run.objects.exists()


def test_runs_beyond_the_cap_are_refused(user: object, settings: object) -> None:
    settings.MAX_EXPERIMENT_RUNS = 5
    with pytest.raises(ConfigError) as raised:
        create(user, seeds=3)  # 2 configurations x 3 seeds
    assert "MAX_EXPERIMENT_RUNS" in raised.value.errors["trials"]


def test_the_grid_is_trained_seed_by_seed_within_parallel(user: object) -> None:
    experiment = create(user)
    advance(experiment)
    first = runs_of(experiment)
    # Two places: both seeds of the first configuration, before a second configuration.
    assert len(first) == 2 and {run.seed_index for run in first} == {0, 1}
    assert first[0].trial_id == first[1].trial_id
    assert {run.seed for run in first} == {1, 2}
    assert all(run.status == Run.Status.QUEUED for run in first)
    advance(experiment)
    assert len(runs_of(experiment)) == 2, "started past `parallel`"
    finish(first[0], 10)
    advance(experiment)
    runs = runs_of(experiment)
    assert len(runs) == 3 and runs[2].trial_id != first[0].trial_id
    trials = list(experiment.trial_set.order_by("number"))
    assert sorted(t.params["lr"] for t in trials) == [0.0003, 0.001]
    assert runs[2].config["lr"] == trials[1].params["lr"] and runs[2].experiment_id == experiment.pk


def test_a_grid_trains_each_of_its_points_once(user: object) -> None:
    grid = {"lr": [0.001, 0.0003], "features": ["bcts", "classic", "dellacherie"]}
    experiment = create(user, grid=grid, seeds=1, parallel=6)
    advance(experiment)
    advance(experiment)
    points = [(t.params["lr"], t.params["features"]) for t in experiment.trial_set.all()]
    assert sorted(points) == sorted((lr, f) for lr in grid["lr"] for f in grid["features"])
    assert len(runs_of(experiment)) == 6


def test_an_experiment_finishes_once_every_run_is_evaluated_and_ranks_by_lower_bound(
    user: object,
) -> None:
    experiment = create(user, parallel=4)
    advance(experiment)
    runs = runs_of(experiment)
    assert len(runs) == 4
    scores = {runs[0].pk: 10.0, runs[1].pk: 12.0, runs[2].pk: 30.0, runs[3].pk: 34.0}
    for run in runs:
        finish(run, scores[run.pk])
    advance(experiment)
    assert experiment.status == Experiment.Status.RUNNING, "finished before its evaluations"
    for run in runs:
        complete_evaluation(run, scores[run.pk])
    advance(experiment)
    assert experiment.status == Experiment.Status.FINISHED
    trials = list(experiment.trial_set.order_by("number"))
    assert [t.state for t in trials] == ["complete", "complete"]
    assert [t.value for t in trials] == [11.0, 32.0]  # IQM of 2 values: their mean
    summary = experiment.summary
    assert summary["status"] == "finished"
    assert summary["ranking"] == [1, 0]
    best = summary["configurations"][1]
    assert best["config"]["lr"] == trials[1].params["lr"]
    assert best["runs"] == [runs[2].pk, runs[3].pk]
    assert best["iqm"] == 32.0 and 30.0 <= best["ci95_low"] <= 32.0 <= best["ci95_high"] <= 34.0
    assert best["censored"] == 0
    # A run that played every evaluation game to the cap has only a lower bound.
    Evaluation.objects.filter(pk=runs[0].final_evaluation_id).update(ci95_high=None)
    assert experiments.experiment_summary(experiment)["configurations"][0]["censored"] == 1
    curve = best["curve"]
    assert curve["x"] and len(curve["iqm"]) == len(curve["low"]) == len(curve["x"])
    band = zip(curve["low"], curve["iqm"], curve["high"], strict=True)
    assert all(low <= mid <= high for low, mid, high in band)
    improvement = {(p["x"], p["y"]): p["probability"] for p in summary["improvement"]}
    assert improvement == {(1, 0): 1.0, (0, 1): 0.0}


def test_a_run_whose_worker_was_lost_is_resumed_not_started_again(user: object) -> None:
    experiment = create(user, grid={}, seeds=1, parallel=1)
    advance(experiment)
    (run,) = runs_of(experiment)
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.FAILED, error="worker lost: w1 sent no heartbeat since ..."
    )
    advance(experiment)
    (again,) = runs_of(experiment)
    assert again.pk == run.pk and again.status == Run.Status.QUEUED and again.retries == 1
    assert ExperimentTrial.objects.filter(experiment=experiment).count() == 1


def test_a_run_that_failed_on_its_own_ends_its_configuration(user: object) -> None:
    experiment = create(user, grid={}, seeds=1, parallel=1)
    advance(experiment)
    (run,) = runs_of(experiment)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED, error="training diverged")
    advance(experiment)
    assert experiment.status == Experiment.Status.FINISHED
    assert experiment.trial_set.get().state == ExperimentTrial.State.FAILED
    assert len(runs_of(experiment)) == 1


def test_the_owners_cap_counts_experiment_runs(user: object, settings: object) -> None:
    settings.MAX_ACTIVE_RUNS_PER_USER = 3
    with pytest.raises(ConfigError) as raised:
        create(user, parallel=4)
    assert "MAX_ACTIVE_RUNS_PER_USER" in raised.value.errors["parallel"]
    services.run_create_and_start(owner=user, name="mine", config=QUICK)
    experiment = create(user, parallel=3)
    advance(experiment)
    assert len(runs_of(experiment)) == 2, "the experiment took places past the owner's cap"


def test_stop_stops_its_runs_and_starts_nothing_more(user: object, other_user: object) -> None:
    experiment = create(user)
    advance(experiment)
    with pytest.raises(NotAllowed):
        experiments.experiment_stop(experiment=experiment, user=other_user)
    experiments.experiment_stop(experiment=experiment, user=user)
    assert experiment.status == Experiment.Status.STOPPED
    assert {run.status for run in runs_of(experiment)} == {Run.Status.STOPPED}
    assert not experiments.experiment_advance(experiment_id=experiment.pk)
    assert len(runs_of(experiment)) == 2


def test_random_and_tpe_sample_the_space_and_never_repeat_a_number(user: object) -> None:
    for sampler in ("random", "tpe"):
        experiment = create(
            user,
            name=sampler,
            grid={"features": ["bcts", "classic"]},
            space={
                "lr": {"low": 1e-4, "high": 1e-2, "log": True},
                "hidden_size": {"low": 8, "high": 64},
            },
            sampler=sampler,
            trials=3,
            seeds=1,
            parallel=3,
        )
        advance(experiment)
        trials = list(experiment.trial_set.order_by("number"))
        assert [t.number for t in trials] == [0, 1, 2]
        for trial in trials:
            assert 1e-4 <= trial.params["lr"] <= 1e-2
            assert isinstance(trial.params["hidden_size"], int)
            assert trial.params["features"] in ("bcts", "classic")
        for run in runs_of(experiment):
            services.run_stop(run=run, user=user)


def test_unchanged_statistics_are_not_recomputed_on_every_sweep(user: object) -> None:
    experiment = create(user)
    advance(experiment)
    first = experiment.summarized_at
    advance(experiment)  # nothing changed, and too soon
    assert experiment.summarized_at == first
    Experiment.objects.filter(pk=experiment.pk).update(
        summarized_at=first - timedelta(seconds=experiments.SUMMARY_EVERY_SECONDS)
    )
    advance(experiment)
    assert experiment.summarized_at > first


def test_a_lagging_configuration_is_pruned_through_the_stop_path(
    user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The curves are read at every step.
    monkeypatch.setattr(experiments, "SUMMARY_EVERY_SECONDS", 0.0)
    monkeypatch.setattr(experiments, "SUMMARY_TIME_FACTOR", 0)
    experiment = create(
        user, grid={"lr": [0.001, 0.0009, 0.0008, 0.0007]}, seeds=1, parallel=1, pruner="median"
    )
    for score in (50.0, 40.0):
        advance(experiment)
        run = Run.objects.filter(experiment=experiment, status=Run.Status.QUEUED).get()
        finish(run, score, pieces=1000)
        advance(experiment)
        complete_evaluation(run, score)
    advance(experiment)
    lagging = Run.objects.filter(experiment=experiment, status=Run.Status.QUEUED).get()
    Run.objects.filter(pk=lagging.pk).update(status=Run.Status.RUNNING, task_id="t")
    store_metrics(lagging, lambda n: 0)
    advance(experiment)
    lagging.refresh_from_db()
    assert lagging.pruned and lagging.status == Run.Status.STOPPING
    assert experiment.trial_set.get(number=2).state == ExperimentTrial.State.PRUNED


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"grid": {"lr": [1e-4, 1e-3], "lr_final": [1e-4, 5e-4]}}, "grid"),
        (
            {"config": {"max_pieces": 1000}, "grid": {"max_minutes": [0, 1], "max_pieces": [0, 1]}},
            "grid",
        ),
        ({"sampler": "random", "grid": {}}, "space"),
        ({"sampler": "random", "grid": {"lr": [0.001, 0.002]}, "trials": 3}, "trials"),
    ],
)
def test_settings_that_cannot_run_together_are_refused_at_create(
    user: object, fields: dict, field: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        create(user, **fields)
    assert field in raised.value.errors, raised.value.errors
    assert not Experiment.objects.exists()


def test_a_configuration_that_cannot_start_fails_alone_and_the_experiment_goes_on(
    user: object,
) -> None:
    # As if validation had let it through: lr 1e-4 with lr_final 5e-4 cannot run.
    experiment = Experiment.objects.create(
        owner=user, name="bad pair", preset="quick",
        config={**QUICK, "lr_final": 5e-4}, grid={"lr": [1e-4, 1e-3]}, trials=2, seeds=1,
        parallel=2, eval_games=1, eval_piece_cap=0,
    )  # fmt: skip
    advance(experiment)
    failed = experiment.trial_set.get(state=ExperimentTrial.State.FAILED)
    assert failed.params == {"lr": 1e-4} and "lr_final" in failed.error
    (run,) = runs_of(experiment)
    assert run.config["lr"] == 1e-3
    finish(run, 10)
    advance(experiment)
    complete_evaluation(run, 10)
    advance(experiment)
    assert experiment.status == Experiment.Status.FINISHED
    assert experiment.summary["configurations"][failed.number]["error"] == failed.error


def test_a_run_stopped_by_its_workers_shutdown_is_resumed_not_scored(user: object) -> None:
    experiment = create(user, grid={}, seeds=1, parallel=1)
    advance(experiment)
    (run,) = runs_of(experiment)
    run.mark_running(worker="w1", task_id="t1")
    services.runs_stop_on_worker(worker="w1", detail="the worker is shutting down")
    Run.objects.get(pk=run.pk).mark_stopped(holder="t1")
    finish(run, 10, status=Run.Status.STOPPED)  # its checkpoint and metrics
    advance(experiment)
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED and run.retries == 1
    assert run.final_evaluation_id is None


def test_a_configuration_with_every_seed_evaluated_ranks_above_a_partial_one(
    user: object,
) -> None:
    experiment = create(user, parallel=4)
    advance(experiment)
    runs = runs_of(experiment)
    for run, score in zip(runs[:3], (10.0, 12.0, 40.0), strict=True):
        finish(run, score)
    advance(experiment)
    for run, score in zip(runs[:3], (10.0, 12.0, 40.0), strict=True):
        complete_evaluation(run, score)
    summary = experiments.experiment_summary(Experiment.objects.get(pk=experiment.pk))
    assert [c["evaluated"] for c in summary["configurations"]] == [2, 1]
    advance(experiment)
    assert experiment.summary["ranking"] == [0, 1]


def test_one_experiments_fault_does_not_hold_up_the_others(
    user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken, fine = create(user, name="broken"), create(user, name="fine")
    real = experiments.experiment_advance

    def advance_or_break(*, experiment_id: int) -> bool:
        if experiment_id == broken.pk:
            raise RuntimeError("a bug")
        return real(experiment_id=experiment_id)

    monkeypatch.setattr(experiments, "experiment_advance", advance_or_break)
    assert experiments.experiments_advance() == [fine.pk]
