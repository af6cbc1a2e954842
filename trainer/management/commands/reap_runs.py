"""manage.py reap_runs: mark runs whose worker was lost as failed."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from trainer import services


class Command(BaseCommand):
    help = "Mark running runs with a stale heartbeat as failed (worker lost)."

    def add_arguments(self, parser: object) -> None:
        parser.add_argument(
            "--stale-after",
            type=float,
            default=settings.RUN_STALE_SECONDS,
            help="seconds without a heartbeat (default: RUN_STALE_SECONDS)",
        )

    def handle(self, *args: object, **options: object) -> None:
        reaped = services.run_reap(stale_after=timedelta(seconds=options["stale_after"]))
        self.stdout.write(
            f"marked failed: {', '.join(map(str, reaped))}" if reaped else "no lost runs"
        )
