"""An experiment on real workers: it finishes on its own, evaluates every run, and loses
no configuration and trains none twice when a worker is SIGKILLed in the middle."""

import os
import signal
from pathlib import Path

import pytest
from django.test import Client

from tests.faults.waiting import wait_for
from tetris_site import stack
from trainer import experiments
from trainer.models import Evaluation, Experiment, Metric, Run

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# cem on a low training board: a few seconds of training per run, checkpoints every second.
TINY = {
    "algorithm": "cem",
    "cem_population": 20,
    "cem_train_height": 10,
    "max_minutes": 0.1,
    "checkpoint_every_s": 1,
    "eval_every_pieces": 2_000,
    "eval_games": 2,
    "eval_piece_cap": 2_000,
    "frames_per_second": 0,
    "threads": 1,
}


def test_a_killed_worker_loses_no_configuration_and_trains_none_twice(
    stack_env: dict,
    stack_dir: Path,
    evaluate_worker: stack.Service,
    user: object,
    client: Client,
) -> None:
    # Sweeps every second, and a run whose heartbeat is 8 s old counts as lost.
    env = {**stack_env, "SWEEP_SECONDS": "1", "RUN_STALE_SECONDS": "8"}
    workers = stack.start_workers(
        env,
        [
            {"name": f"exp-{n}", "queues": "training", "log_path": stack_dir / f"exp-{n}.log"}
            for n in "ab"
        ],
    )
    hostnames = {worker.extra["hostname"]: worker for worker in workers}
    try:
        experiment = experiments.experiment_create(
            owner=user,
            name="elite sweep",
            preset="record",
            config=TINY,
            grid={"cem_elite_fraction": [0.1, 0.2]},
            seeds=2,
            parallel=2,
            eval_games=4,
            eval_piece_cap=2_000,
        )

        def training_on_ours() -> Run | None:
            return (
                Run.objects.filter(
                    experiment=experiment, status=Run.Status.RUNNING, worker__in=hostnames
                )
                .filter(pk__in=Metric.objects.values("run_id"))
                .first()
            )

        victim_run = wait_for(training_on_ours, 120, "a run training on one of our workers")
        victim = hostnames[victim_run.worker]
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait()

        def finished() -> bool:
            return Experiment.objects.get(pk=experiment.pk).status == Experiment.Status.FINISHED

        wait_for(finished, 240, "the experiment to finish on its own")
        runs = list(Run.objects.filter(experiment=experiment))
        assert len(runs) == 4, "a configuration's seed was started twice, or never"
        assert len({(run.trial_id, run.seed_index) for run in runs}) == 4
        assert experiment.trial_set.count() == 2
        victim_run.refresh_from_db()
        assert victim_run.retries == 1, "the lost run was not resumed exactly once"
        for run in runs:
            assert run.status == Run.Status.FINISHED, (run.pk, run.status, run.error)
            evaluation = Evaluation.objects.get(pk=run.final_evaluation_id)
            assert evaluation.status == Evaluation.Status.DONE and evaluation.games == 4

        client.force_login(user)
        answer = client.get(f"/api/experiments/{experiment.pk}/").json()
        assert answer["status"] == "finished"
        for configuration in answer["configurations"]:
            assert configuration["evaluated"] == 2
            assert configuration["ci95_low"] <= configuration["iqm"] <= configuration["ci95_high"]
            curve = configuration["curve"]
            assert curve["x"] and len(curve["low"]) == len(curve["high"]) == len(curve["x"])
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop(grace=10)
