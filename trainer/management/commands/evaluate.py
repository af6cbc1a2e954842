"""manage.py evaluate RUN: greedy games of the run's best policy on the evaluation seeds.

The games are played in chunks by the `evaluate` workers (or here, with --here), stored as
one of the run's evaluations, and shown with their 95% interval. The best game is kept as
the run's best evaluation game (if it beats the one kept), for the viewer to replay.
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError
from kombu.exceptions import OperationalError

from trainer import selectors, services
from trainer.exporting import evaluation_summary
from trainer.management.commands._helpers import acting_user, find_run, table
from trainer.models import Evaluation, EvaluationChunk
from trainer.rl.confidence import score_text
from trainer.rl.config import ConfigError

POLL_SECONDS = 0.5
EVALUATE_QUEUE = "evaluate"
# How long live workers have to say which queues they serve.
INSPECT_TIMEOUT_S = 1.0


class Command(BaseCommand):
    help = (
        "Play greedy games of a run's best policy on the evaluation seeds, on the evaluate "
        "workers; print lines per game with a 95% interval."
    )

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("run", metavar="RUN", help="run id")
        parser.add_argument("--games", type=int, default=20)
        parser.add_argument("--piece-cap", type=int, default=0, help="pieces per game (0 = none)")
        parser.add_argument(
            "--latest", action="store_true", help="the latest checkpoint, not the best-evaluated"
        )
        parser.add_argument(
            "--here", action="store_true", help="play the games in this process, not on workers"
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="start it on the workers and print its id"
        )
        parser.add_argument("--user", help="act as this user (default: as the run's owner)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: object, **options: object) -> None:
        user = acting_user(options["user"])
        run = find_run(options["run"], user)
        checkpoint = selectors.latest_checkpoint(run) if options["latest"] else None
        if not options["here"] and not evaluate_queue_served():
            self.stderr.write(
                f"no live worker serves queue {EVALUATE_QUEUE} (make run starts one): "
                "playing the games here"
            )
            options["here"] = True
        try:
            evaluation = services.evaluation_start(
                run=run,
                user=user or run.owner,
                games=options["games"],
                piece_cap=options["piece_cap"],
                checkpoint=checkpoint,
                enqueue=not options["here"],
            )
        except (ConfigError, selectors.NotAllowed) as error:
            raise CommandError(str(error)) from None
        if options["no_wait"] and not options["here"]:
            self.stdout.write(f"evaluation {evaluation.pk} of run {run.pk} is on the workers")
            return
        evaluation = self._play_or_wait(evaluation, options)
        if evaluation.status == Evaluation.Status.FAILED:
            raise CommandError(f"evaluation {evaluation.pk} failed: {evaluation.error}")
        self._print(evaluation, options["json"])

    def _play_or_wait(self, evaluation: Evaluation, options: dict) -> Evaluation:
        from tqdm import tqdm

        with tqdm(total=evaluation.games, unit="game", disable=options["json"]) as bar:
            if options["here"]:
                from trainer.evaluator import chunk_execute

                for chunk in evaluation.chunks.order_by("index"):
                    chunk_execute(chunk_id=chunk.pk, worker="manage.py evaluate --here")
                    evaluation.refresh_from_db()
                    bar.update(evaluation.games_done - bar.n)
                return evaluation
            if not options["json"]:
                self.stderr.write(
                    f"evaluation {evaluation.pk}: waiting for the evaluate workers "
                    "(make run starts them; --here plays here instead)"
                )
            while evaluation.status == Evaluation.Status.RUNNING:
                time.sleep(POLL_SECONDS)
                evaluation.refresh_from_db()
                bar.update(evaluation.games_done - bar.n)
        return evaluation

    def _print(self, evaluation: Evaluation, as_json: bool) -> None:
        chunks = EvaluationChunk.objects.filter(evaluation=evaluation).order_by("index")
        lines = [value for chunk in chunks for value in chunk.lines]
        if as_json:
            result = {**evaluation_summary(evaluation), "run": evaluation.run_id, "lines": lines}
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(table(("game", "lines"), list(enumerate(lines, start=1))))
        self.stdout.write(
            f"mean lines {score_text(evaluation_summary(evaluation))}\n"
            f"median {evaluation.median_lines:,.1f}  "
            f"min {evaluation.min_lines:,}  max {evaluation.max_lines:,}  "
            f"piece cap {evaluation.piece_cap or 'none'}  "
            f"{evaluation.seconds:.1f} s of play over the workers"
        )


def evaluate_queue_served() -> bool:
    """Whether a live Celery worker consumes from the evaluate queue (asked by broadcast)."""
    from celery import current_app

    try:
        answers = current_app.control.inspect(timeout=INSPECT_TIMEOUT_S).active_queues() or {}
    except (OSError, OperationalError):  # no broker: no worker can be reached either
        return False
    return any(
        queue.get("name") == EVALUATE_QUEUE for queues in answers.values() for queue in queues
    )
