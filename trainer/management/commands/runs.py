"""manage.py runs: list runs as a table, or JSON."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from trainer import selectors
from trainer.exporting import run_summary
from trainer.management.commands._helpers import acting_user, table
from trainer.models import Run


class Command(BaseCommand):
    help = "List runs, newest first."

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("--user", help="only runs this user may see")
        parser.add_argument("--status", choices=Run.Status.values)
        parser.add_argument("--limit", type=int, default=50)
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: object, **options: object) -> None:
        user = acting_user(options["user"])
        runs = selectors.runs_visible_to(user) if user else Run.objects.select_related("owner")
        if options["status"]:
            runs = runs.filter(status=options["status"])
        runs = list(runs[: max(options["limit"], 1)])
        if options["json"]:
            self.stdout.write(json.dumps([run_summary(run) for run in runs], indent=2))
            return
        headers = ("id", "name", "owner", "algo", "status", "episodes", "best", "recent", "created")
        rows = [
            (
                run.pk,
                run.name[:30],
                run.owner.get_username(),
                run.algorithm,
                run.status,
                run.episodes,
                run.best_lines,
                run.recent_mean_lines,
                run.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for run in runs
        ]
        self.stdout.write(table(headers, rows) if rows else "no runs")
