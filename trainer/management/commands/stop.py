"""manage.py stop RUN: ask a run to checkpoint and stop."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from trainer import services
from trainer.management.commands._helpers import RunActionCommand
from trainer.models import Run


class Command(RunActionCommand):
    help = "Ask a run to checkpoint and stop (within a second of the worker seeing it)."

    def act(self, run: Run, user: AbstractBaseUser) -> Run:
        return services.run_stop(run=run, user=user)
