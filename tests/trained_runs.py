"""A small run trained to its end in the test process, through the worker's own code path."""

from django.contrib.auth.models import AbstractBaseUser

from trainer import services
from trainer.models import Run
from trainer.runner import run_execute

# cem on a low training board: a few generations in about a second, with checkpoints and
# best games stored as a worker would store them.
SHORT_CEM = {
    "max_minutes": 0.0,
    "max_episodes": 100,
    "cem_population": 20,
    "cem_train_height": 10,
    "frames_per_second": 0.0,
    "threads": 1,
}


def finished_cem_run(owner: AbstractBaseUser, name: str = "short cem", **visibility: str) -> Run:
    """A cem run of 100 training games, trained here by `run_execute` and finished."""
    run = services.run_create(
        owner=owner, name=name, algorithm="cem", preset="record", config=SHORT_CEM, **visibility
    )
    run_execute(run_id=run.pk, worker="test process")
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED, run.error
    return run
