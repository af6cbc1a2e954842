"""manage.py evaluate RUN: greedy games from the run's last checkpoint, as a table.

The best game is kept as the run's best evaluation game (if it beats the one kept), for
the viewer to replay.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from trainer.management.commands._helpers import acting_user, find_run, table
from trainer.recording import BestGameRecorder
from trainer.selectors import latest_checkpoint


class Command(BaseCommand):
    help = "Play greedy games on fixed seeds from a run's last checkpoint; print lines per game."

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("run", metavar="RUN", help="run id")
        parser.add_argument("--games", type=int, default=20)
        parser.add_argument("--piece-cap", type=int, default=0, help="pieces per game (0 = none)")
        parser.add_argument("--seconds", type=float, help="time budget for all games")
        parser.add_argument("--user", help="only if this user may see the run")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: object, **options: object) -> None:
        from tqdm import tqdm

        from trainer.rl import evaluate

        run = find_run(options["run"], acting_user(options["user"]))
        checkpoint = latest_checkpoint(run)
        if checkpoint is None:
            raise CommandError(f"run {run.pk} has no checkpoint yet")
        if options["games"] < 1 or options["piece_cap"] < 0:
            raise CommandError("--games must be at least 1 and --piece-cap at least 0")
        with tqdm(total=options["games"], unit="game", disable=options["json"]) as bar:
            result = evaluate(
                checkpoint.file.path,
                games=options["games"],
                piece_cap=options["piece_cap"],
                time_budget_s=options["seconds"],
                progress=lambda done, total: bar.update(done - bar.n),
                width=run.config.get("width", 10),
                height=run.config.get("height", 20),
                randomizer=run.config.get("randomizer", "uniform"),
                callbacks=[BestGameRecorder(run.pk)],
            )
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        rows = [(i + 1, lines) for i, lines in enumerate(result.lines)]
        self.stdout.write(table(("game", "lines"), rows))
        self.stdout.write(
            f"mean {result.mean_lines:,.1f}  median {result.median_lines:,.1f}  "
            f"min {result.min_lines:,}  max {result.max_lines:,}  "
            f"piece cap {result.piece_cap or 'none'}  {result.seconds:.1f}s"
        )
