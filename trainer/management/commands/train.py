"""manage.py train: train a run here with a progress bar, or queue it for the workers."""

from __future__ import annotations

import json
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from trainer import queues, services
from trainer.management.commands._helpers import add_run_options, owner_for_new_run
from trainer.models import Run
from trainer.rl.config import ConfigError, TrainConfig


class Command(BaseCommand):
    help = "Create a run and train it in the foreground, or hand it to the workers with --queue."

    def add_arguments(self, parser: object) -> None:
        add_run_options(parser)
        parser.add_argument("--user", help="owner of the run (default: the only user)")
        parser.add_argument("--queue", action="store_true", help="hand the run to the workers")
        parser.add_argument("--json", action="store_true", help="print the run as JSON")

    def handle(self, *args: object, **options: object) -> None:
        owner = owner_for_new_run(options["user"])
        try:
            overrides = TrainConfig.parse_overrides(options["set"])
            if options["minutes"] is not None:
                overrides["max_minutes"] = options["minutes"]
            fields = {
                "name": options["name"] or f"{options['preset']} {options['algorithm'] or ''}",
                "algorithm": options["algorithm"],
                "preset": options["preset"],
                "config": overrides,
                "seed": options["seed"],
                "visibility": "public" if options["public"] else "private",
            }
            if options["queue"]:
                run = services.run_create_and_start(owner=owner, **fields)
            else:
                run = services.run_create(owner=owner, **fields)
        except ConfigError as error:
            raise CommandError(f"invalid config: {error}") from None
        except (services.LimitReached, queues.QueueUnavailable) as error:
            raise CommandError(str(error)) from None
        if options["queue"]:
            self._report(run, options["json"], f"queued run {run.pk} ({run.name})")
            return
        self._train_here(run, options["json"])

    def _train_here(self, run: Run, as_json: bool) -> None:
        from trainer.progress import ProgressBar
        from trainer.runner import run_execute, worker_name

        interrupted = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
        self.stderr.write(f"training run {run.pk} ({run.name}); Ctrl-C stops with a checkpoint")
        try:
            with ProgressBar() as bar:
                run = run_execute(
                    run_id=run.pk,
                    worker=f"cli@{worker_name()}",
                    extra_callbacks=[bar],
                    interrupt=interrupted,
                )
        finally:
            signal.signal(signal.SIGINT, previous)
        run.refresh_from_db()
        self._report(run, as_json, f"run {run.pk} {run.status}: best {run.best_lines:,} lines")
        if run.status == Run.Status.FAILED:
            raise CommandError(run.error)

    def _report(self, run: Run, as_json: bool, text: str) -> None:
        if as_json:
            from trainer.exporting import run_summary

            self.stdout.write(json.dumps(run_summary(run), indent=2))
        else:
            self.stdout.write(text)
