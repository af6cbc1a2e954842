"""Reads, and the one access policy that every entry point calls.

Rules: the owner sees and controls their run; others see a public run, read-only; staff
see and stop everything.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Avg, Count, F, IntegerField, Max, Min, Q, QuerySet
from django.db.models.functions import Cast

from trainer.models import Checkpoint, Metric, Run

User = AbstractBaseUser | AnonymousUser


class RunNotFound(Exception):
    """No such run, or one the user may not see (the two are not told apart)."""


class NotAllowed(Exception):
    """The user may see the run but not do this to it."""


def runs_visible_to(user: User) -> QuerySet[Run]:
    """Runs the user may see: their own and public ones; everything for staff."""
    if not user.is_authenticated:
        return Run.objects.none()
    runs = Run.objects.select_related("owner")
    if user.is_staff:
        return runs
    return runs.filter(Q(owner=user) | Q(visibility=Run.Visibility.PUBLIC))


def run_for_viewer(user: User, run_id: int) -> Run:
    """The run, if the user may see it; else RunNotFound."""
    run = runs_visible_to(user).filter(pk=run_id).first()
    if run is None:
        raise RunNotFound(f"run {run_id} not found")
    return run


def can_see(user: User, run: Run) -> bool:
    """Whether the user may watch the run."""
    if not user.is_authenticated:
        return False
    return user.is_staff or run.owner_id == user.pk or run.visibility == Run.Visibility.PUBLIC


def can_stop(user: User, run: Run) -> bool:
    """The owner and staff may stop a run."""
    return user.is_authenticated and (user.is_staff or run.owner_id == user.pk)


def can_control(user: User, run: Run) -> bool:
    """Only the owner starts, resumes, deletes and changes visibility."""
    return user.is_authenticated and run.owner_id == user.pk


def ensure_can_stop(user: User, run: Run) -> None:
    """Raise NotAllowed unless the user may stop the run."""
    if not can_stop(user, run):
        raise NotAllowed("only the run's owner or staff can stop it")


def ensure_can_control(user: User, run: Run) -> None:
    """Raise NotAllowed unless the user owns the run."""
    if not can_control(user, run):
        raise NotAllowed("only the run's owner can do that")


def run_counts_by_status() -> dict[str, int]:
    """How many runs are in each status (all users; no names)."""
    rows = Run.objects.values("status").annotate(n=Count("id")).order_by()
    counts = {status: 0 for status in Run.Status.values}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


METRIC_FIELDS = (
    "episode",
    "lines",
    "score",
    "pieces",
    "reward",
    "loss",
    "epsilon",
    "placements_per_second",
    "total_pieces",
    "wall_time",
)


def run_metric_points(run: Run, *, max_points: int) -> tuple[list[dict], int]:
    """The run's metrics, downsampled on the server when there are more than `max_points`.

    Downsampling groups consecutive episodes into equal buckets and keeps, per bucket,
    the mean of every figure plus the min and max of lines, so spikes and collapses
    survive; a chart never needs five million points.
    """
    metrics = Metric.objects.filter(run=run)
    total = metrics.count()
    if total <= max_points:
        rows = list(metrics.order_by("episode").values(*METRIC_FIELDS, "extra"))
        return [_flatten(row) for row in rows], total
    first, last = metrics.aggregate(a=Min("episode"), b=Max("episode")).values()
    bucket = max(1, -(-(last - first + 1) // max_points))
    # Annotation names must differ from the columns they aggregate; "_" marks them.
    aggregates = {f"_{name}": Avg(name) for name in METRIC_FIELDS}
    aggregates.update(
        _episode=Max("episode"),
        _total_pieces=Max("total_pieces"),
        _wall_time=Max("wall_time"),
        _lines_min=Min("lines"),
        _lines_max=Max("lines"),
    )
    rows = (
        metrics.annotate(bucket=_bucket_expression(first, bucket))
        .values("bucket")
        .annotate(**aggregates)
        .order_by("bucket")
    )
    return [{k[1:]: v for k, v in row.items() if k != "bucket"} for row in rows], total


def _bucket_expression(first: int, bucket: int) -> Cast:
    # Integer division on both SQLite and PostgreSQL.
    return Cast((F("episode") - first) / bucket, IntegerField())


def _flatten(row: dict) -> dict:
    extra = row.pop("extra") or {}
    return {**extra, **row}


def run_checkpoints(run: Run) -> QuerySet[Checkpoint]:
    """The run's checkpoints, newest first."""
    return Checkpoint.objects.filter(run=run).order_by("-episode", "-id")


def latest_checkpoint(run: Run) -> Checkpoint | None:
    """The newest checkpoint of the run, if any."""
    return run_checkpoints(run).first()
