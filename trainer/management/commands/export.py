"""manage.py export RUN --format csv|json: a run's metrics."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand

from trainer.exporting import metrics_csv_lines, run_export_json
from trainer.management.commands._helpers import acting_user, find_run


class Command(BaseCommand):
    help = "Write a run's metrics as CSV, or the run and its metrics as JSON."

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("run", metavar="RUN", help="run id")
        parser.add_argument("--format", choices=["csv", "json"], default="csv")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")
        parser.add_argument("--user", help="only if this user may see the run")

    def handle(self, *args: object, **options: object) -> None:
        run = find_run(options["run"], acting_user(options["user"]))
        out = open(options["output"], "w", newline="") if options["output"] else sys.stdout  # noqa: SIM115
        try:
            if options["format"] == "csv":
                for line in metrics_csv_lines(run):
                    out.write(line)
            else:
                json.dump(run_export_json(run), out, indent=1, default=str)
                out.write("\n")
        finally:
            if out is not sys.stdout:
                out.close()
