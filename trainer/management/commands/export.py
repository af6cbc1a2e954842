"""manage.py export RUN --format csv|json|tensorboard: a run's metrics."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from trainer.exporting import metrics_csv_lines, run_json_chunks, write_tensorboard
from trainer.management.commands._helpers import acting_user, find_run
from trainer.models import Run


class Command(BaseCommand):
    help = (
        "Write a run's metrics as CSV, the run and its metrics as JSON, or its metrics as a "
        "TensorBoard event file (view it with `tensorboard --logdir DIR`)."
    )

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("run", metavar="RUN", help="run id")
        parser.add_argument("--format", choices=["csv", "json", "tensorboard"], default="csv")
        parser.add_argument(
            "--output",
            "-o",
            help="file to write (default: standard output); for tensorboard, the folder "
            "(default: tensorboard/run-RUN)",
        )
        parser.add_argument("--user", help="only if this user may see the run")

    def handle(self, *args: object, **options: object) -> None:
        run = find_run(options["run"], acting_user(options["user"]))
        if options["format"] == "tensorboard":
            self.export_tensorboard(run, options["output"])
            return
        out = open(options["output"], "w", newline="") if options["output"] else sys.stdout  # noqa: SIM115
        chunks = metrics_csv_lines(run) if options["format"] == "csv" else run_json_chunks(run)
        try:
            for chunk in chunks:
                out.write(chunk)
            if options["format"] == "json":
                out.write("\n")
        finally:
            if out is not sys.stdout:
                out.close()

    def export_tensorboard(self, run: Run, output: str | None) -> None:
        """Write the event file and say where it is and how to view it."""
        folder = Path(output or f"tensorboard/run-{run.pk}")
        path, episodes = write_tensorboard(run, folder)
        self.stdout.write(f"wrote {episodes:,} episodes of run {run.pk} to {path}")
        self.stdout.write(f"view them with: tensorboard --logdir {folder}")
