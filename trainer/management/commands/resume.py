"""manage.py resume RUN: queue a stopped or failed run again from its last checkpoint."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from trainer import selectors, services
from trainer.management.commands._helpers import acting_user, find_run
from trainer.models import InvalidTransition


class Command(BaseCommand):
    help = "Queue a stopped or failed run again; it continues from its last checkpoint."

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("run", metavar="RUN", help="run id")
        parser.add_argument("--user", help="act as this user (default: as the run's owner)")

    def handle(self, *args: object, **options: object) -> None:
        user = acting_user(options["user"])
        run = find_run(options["run"], user)
        try:
            run = services.run_resume(run=run, user=user or run.owner)
        except (InvalidTransition, selectors.NotAllowed) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"run {run.pk} is {run.status}")
