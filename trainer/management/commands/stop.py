"""manage.py stop RUN: ask a run to checkpoint and stop."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from trainer import selectors, services
from trainer.management.commands._helpers import acting_user, find_run
from trainer.models import InvalidTransition


class Command(BaseCommand):
    help = "Ask a run to checkpoint and stop (within a second of the worker seeing it)."

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("run", metavar="RUN", help="run id")
        parser.add_argument("--user", help="act as this user (default: as the run's owner)")

    def handle(self, *args: object, **options: object) -> None:
        user = acting_user(options["user"])
        run = find_run(options["run"], user)
        try:
            run = services.run_stop(run=run, user=user or run.owner)
        except (InvalidTransition, selectors.NotAllowed) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"run {run.pk} is {run.status}")
