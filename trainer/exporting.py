"""A run's history as CSV or JSON, for the API, the admin and `manage.py export`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from trainer.models import Metric, Run
from trainer.selectors import METRIC_FIELDS

CSV_COLUMNS = (*METRIC_FIELDS, "extra")


def metrics_csv_lines(run: Run) -> Iterator[str]:
    """The run's metrics as CSV text, a line at a time (streams millions of rows)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield take()
    rows = Metric.objects.filter(run=run).order_by("episode").values_list(*CSV_COLUMNS)
    for row in rows.iterator(chunk_size=5000):
        writer.writerow(row)
        yield take()


def run_summary(run: Run) -> dict:
    """The run's stored fields as JSON-safe data."""
    return {
        "id": run.pk,
        "name": run.name,
        "owner": run.owner.get_username(),
        "algorithm": run.algorithm,
        "preset": run.preset,
        "config": run.config,
        "seed": run.seed,
        "visibility": run.visibility,
        "status": run.status,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "heartbeat_at": run.heartbeat_at.isoformat() if run.heartbeat_at else None,
        "worker": run.worker,
        "code_version": run.code_version,
        "episodes": run.episodes,
        "total_pieces": run.total_pieces,
        "best_lines": run.best_lines,
        "recent_mean_lines": run.recent_mean_lines,
        "wall_time": run.wall_time,
    }


def run_export_json(run: Run) -> dict:
    """The run and every metric row."""
    rows = Metric.objects.filter(run=run).order_by("episode").values(*CSV_COLUMNS)
    return {"run": run_summary(run), "metrics": list(rows.iterator(chunk_size=5000))}
