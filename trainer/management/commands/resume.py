"""manage.py resume RUN: queue a stopped or failed run again from its last checkpoint."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from trainer import services
from trainer.management.commands._helpers import RunActionCommand
from trainer.models import Run


class Command(RunActionCommand):
    help = "Queue a stopped or failed run again; it continues from its last checkpoint."

    def act(self, run: Run, user: AbstractBaseUser) -> Run:
        return services.run_resume(run=run, user=user)
