"""Reads, and the one access policy that every entry point calls.

Rules: the owner sees and controls their run; others see a public run, read-only; staff
see and stop everything.
"""

from __future__ import annotations

import dataclasses

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import (
    Avg,
    BigIntegerField,
    Case,
    Count,
    F,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast

from trainer.models import BestGame, Checkpoint, Evaluation, Metric, Run
from trainer.rl.config import TrainConfig

User = AbstractBaseUser | AnonymousUser


class RunNotFound(Exception):
    """No such run, or one the user may not see (the two are not told apart)."""


class NotAllowed(Exception):
    """The user may see the run but not do this to it."""


def visible_to(user: User, rows: QuerySet) -> QuerySet:
    """The rows (runs, experiments: an `owner` and a `visibility`) the user may see: their
    own and public ones; everything for staff."""
    if not user.is_authenticated:
        return rows.none()
    rows = rows.select_related("owner")
    if user.is_staff:
        return rows
    return rows.filter(Q(owner=user) | Q(visibility=Run.Visibility.PUBLIC))


def runs_visible_to(user: User) -> QuerySet[Run]:
    """Runs the user may see: their own and public ones; everything for staff."""
    return visible_to(user, Run.objects.all())


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
    rows = (
        metrics.annotate(bucket=_bucket_expression(first, bucket))
        .values("bucket")
        .annotate(**_bucket_aggregates())
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
    """The newest resumable checkpoint of the run, if any: training continues from it."""
    return run_checkpoints(run).filter(kind=Checkpoint.Kind.LATEST).first()


def best_checkpoint(run: Run) -> Checkpoint | None:
    """The policy to play and evaluate: the best-evaluated one, else the newest one."""
    best = run_checkpoints(run).filter(kind=Checkpoint.Kind.BEST).first()
    return best or latest_checkpoint(run)


def run_checkpoint(run: Run, checkpoint_id: int | None) -> Checkpoint | None:
    """One of the run's checkpoints by id (None: its best), or None if it has no such one."""
    if checkpoint_id is None:
        return best_checkpoint(run)
    return run_checkpoints(run).filter(pk=checkpoint_id).first()


def runs_evaluations(runs: list[Run]) -> dict[int, list[Evaluation]]:
    """Each run's evaluations, oldest first, in one query however many runs there are."""
    by_run: dict[int, list[Evaluation]] = {run.pk: [] for run in runs}
    evaluations = Evaluation.objects.filter(run__in=runs).order_by("run_id", "created_at", "id")
    for evaluation in evaluations:
        by_run[evaluation.run_id].append(evaluation)
    return by_run


def run_evaluations(run: Run, *, kind: str | None = None) -> QuerySet[Evaluation]:
    """The run's evaluations, oldest first (of one kind if given)."""
    evaluations = Evaluation.objects.filter(run=run).order_by("created_at", "id")
    return evaluations.filter(kind=kind) if kind else evaluations


def run_best_games(run: Run) -> dict[str, BestGame]:
    """The run's best games by kind (`train`, `eval`), without their placements."""
    games = BestGame.objects.filter(run=run).defer("actions")
    return {game.kind: game for game in games}


def run_best_game(run: Run, kind: str) -> BestGame | None:
    """The run's best game of a kind, placements included, if it has one."""
    return BestGame.objects.filter(run=run, kind=kind).first()


def checkpoint_at_episode(run: Run, episode: int | None) -> Checkpoint | None:
    """The run's checkpoint written at this episode (None: its best), if it has one."""
    if episode is None:
        return best_checkpoint(run)
    return run_checkpoints(run).filter(episode=episode).first()


# --- comparing runs ---

MAX_COMPARED_RUNS = 20
# Every compared point carries the three x-axes, so a browser switches axis without asking.
COMPARE_COLUMNS = (*METRIC_FIELDS, "lines_min", "lines_max")


def parse_run_ids(text: str) -> list[int]:
    """Run ids from "1,2,3", in order, without repeats; ValueError says what is wrong."""
    ids: list[int] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit()) or len(part) > 18:
            raise ValueError(f"must be run ids separated by commas, got {part[:20]!r}")
        if int(part) not in ids:
            ids.append(int(part))
    if not ids:
        raise ValueError("name at least one run id, e.g. runs=1,2")
    if len(ids) > MAX_COMPARED_RUNS:
        raise ValueError(f"compare at most {MAX_COMPARED_RUNS} runs at once")
    return ids


def runs_for_comparison(user: User, run_ids: list[int]) -> list[Run]:
    """The runs in the order asked, if the user may see every one of them; else RunNotFound."""
    found = {run.pk: run for run in runs_visible_to(user).filter(pk__in=run_ids)}
    missing = [run_id for run_id in run_ids if run_id not in found]
    if missing:
        raise RunNotFound(f"run {missing[0]} not found")
    return [found[run_id] for run_id in run_ids]


def runs_metric_columns(runs: list[Run], *, max_points: int) -> dict[int, dict]:
    """Each run's metrics as columns of COMPARE_COLUMNS, cut to at most `max_points` points.

    The same equal-episode buckets as run_metric_points, for every run in one grouped
    query (plus one for the runs' spans): two queries however many runs are compared.
    Answers {run id: {"total": stored rows, "points": {column: [values]}}}.
    """
    ids = [run.pk for run in runs]
    spans = (
        Metric.objects.filter(run_id__in=ids)
        .values("run_id")
        .annotate(total=Count("id"), first=Min("episode"), last=Max("episode"))
        .order_by()
    )
    columns: dict[int, dict] = {
        run_id: {"total": 0, "points": {name: [] for name in COMPARE_COLUMNS}} for run_id in ids
    }
    firsts, widths = [], []
    for span in spans:
        columns[span["run_id"]]["total"] = span["total"]
        width = 1
        if span["total"] > max_points:
            width = max(1, -(-(span["last"] - span["first"] + 1) // max_points))
        firsts.append(When(run_id=span["run_id"], then=Value(span["first"])))
        widths.append(When(run_id=span["run_id"], then=Value(width)))
    if not firsts:
        return columns
    first = Case(*firsts, output_field=BigIntegerField())
    width = Case(*widths, output_field=BigIntegerField())
    rows = (
        Metric.objects.filter(run_id__in=ids)
        .annotate(bucket=Cast((F("episode") - first) / width, IntegerField()))
        .values("run_id", "bucket")
        .annotate(**_bucket_aggregates())
        .order_by("run_id", "bucket")
    )
    for row in rows.iterator(chunk_size=5000):
        points = columns[row["run_id"]]["points"]
        for name in COMPARE_COLUMNS:
            points[name].append(row[f"_{name}"])
    return columns


def _bucket_aggregates() -> dict:
    # Annotation names must differ from the columns they aggregate; "_" marks them.
    aggregates = {f"_{name}": Avg(name) for name in METRIC_FIELDS}
    aggregates.update(
        _episode=Max("episode"),
        _total_pieces=Max("total_pieces"),
        _wall_time=Max("wall_time"),
        _lines_min=Min("lines"),
        _lines_max=Max("lines"),
    )
    return aggregates


def config_differences(runs: list[Run]) -> list[dict]:
    """The runs' settings side by side: [{"field", "values" (one per run), "differs"}].

    Algorithm, preset and seed first, then TrainConfig's fields in its own order, then
    any field an older run stored that the config no longer has.
    """
    known = [field.name for field in dataclasses.fields(TrainConfig)]
    stored = {name for run in runs for name in run.config}
    names = ["algorithm", "preset", *known, *sorted(stored - set(known))]
    rows = []
    for name in dict.fromkeys(names):
        values = [_setting(run, name) for run in runs]
        if all(value is None for value in values):
            continue
        rows.append({"field": name, "values": values, "differs": len(set(map(repr, values))) > 1})
    return rows


def _setting(run: Run, name: str) -> object:
    if name == "preset":
        return run.preset
    if name == "algorithm":
        return run.algorithm
    return run.config.get(name)
