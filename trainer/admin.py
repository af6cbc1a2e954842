"""The admin is the run history: list, filter, stop, resume, clone, export; each run's
checkpoints, best games and evaluations; every evaluation, read-only."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from trainer import selectors, services
from trainer.exporting import evaluation_summary, run_export_json
from trainer.models import BestGame, Checkpoint, Evaluation, InvalidTransition, Run
from trainer.rl.confidence import score_text
from trainer.sparkline import HEIGHT, WIDTH, sparkline_points


def sparkline_svg(curve: list[list[float]]) -> SafeString:
    """A small SVG learning curve (mean lines per game) from a run's stored curve."""
    points = sparkline_points(curve)
    if not points:
        return mark_safe("<span>—</span>")
    return format_html(
        '<svg width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="learning curve">'
        '<polyline fill="none" stroke="#4fc3f7" stroke-width="1.5" points="{}"/></svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        points,
    )


def evaluation_score(evaluation: Evaluation) -> str:
    """An evaluation's score with its interval and games; its progress while it runs."""
    if evaluation.status == Evaluation.Status.RUNNING:
        return f"running: {evaluation.games_done:,} of {evaluation.games:,} games"
    if evaluation.status == Evaluation.Status.FAILED:
        return "failed"
    return score_text(evaluation_summary(evaluation))


class CheckpointInline(admin.TabularInline):
    model = Checkpoint
    extra = 0
    can_delete = False
    fields = ("kind", "episode", "total_pieces", "size_bytes", "created_at", "download")
    readonly_fields = fields
    ordering = ("-episode",)

    def has_add_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    @admin.display(description="file")
    def download(self, checkpoint: Checkpoint) -> str:
        url = reverse("checkpoint-download", args=[checkpoint.run_id, checkpoint.pk])
        return format_html('<a href="{}">download</a>', url)


class BestGameInline(admin.TabularInline):
    model = BestGame
    extra = 0
    can_delete = False
    fields = ("kind", "lines", "pieces", "episode", "seed", "recorded_at", "replay")
    readonly_fields = fields
    verbose_name_plural = "best games"

    def has_add_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    @admin.display(description="replay")
    def replay(self, game: BestGame) -> str:
        url = reverse("run-replay", args=[game.run_id, game.kind])
        return format_html('<a href="{}">replay</a>', url)


class EvaluationInline(admin.TabularInline):
    model = Evaluation
    extra = 0
    can_delete = False
    fields = (
        "kind",
        "status",
        "episode",
        "total_pieces",
        "score",
        "median_lines",
        "min_lines",
        "max_lines",
        "piece_cap",
        "best",
        "seconds",
        "created_at",
    )
    readonly_fields = fields
    ordering = ("created_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    @admin.display(description="lines per game (95% CI)")
    def score(self, evaluation: Evaluation) -> str:
        return evaluation_score(evaluation)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "status",
        "owner",
        "algorithm",
        "episodes",
        "best_lines",
        "recent_lines",
        "kept_score",
        "duration",
        "curve_image",
        "created_at",
    )
    list_display_links = ("id", "name")
    list_filter = ("status", "algorithm", "visibility", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name",)
    list_select_related = ("owner",)
    list_per_page = 50
    # COUNT(*) over 10,000 runs on every page view buys nothing.
    show_full_result_count = False
    date_hierarchy = None
    readonly_fields = (
        "status",
        "task_id",
        "worker",
        "error",
        "code_version",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "stop_requested_at",
        "episodes",
        "total_pieces",
        "best_lines",
        "recent_mean_lines",
        "wall_time",
        "kept_score",
        "curve_image",
    )
    exclude = ("curve", "best_evaluation")
    inlines = [CheckpointInline, BestGameInline, EvaluationInline]
    actions = ["stop_runs", "resume_runs", "clone_runs", "export_runs"]

    @admin.display(description="recent lines", ordering="recent_mean_lines")
    def recent_lines(self, run: Run) -> str:
        return f"{run.recent_mean_lines:,.1f}"

    @admin.display(description="kept policy (best)")
    def kept_score(self, run: Run) -> str:
        return score_text(run.best_evaluation)

    @admin.display(description="duration", ordering="wall_time")
    def duration(self, run: Run) -> str:
        minutes, seconds = divmod(int(run.wall_time), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}"

    @admin.display(description="lines per game")
    def curve_image(self, run: Run) -> SafeString:
        return sparkline_svg(run.curve)

    def _each(self, request: HttpRequest, runs: QuerySet[Run], action: object, done: str) -> None:
        ok = 0
        for run in runs:
            try:
                action(run=run, user=request.user)
                ok += 1
            except (InvalidTransition, selectors.NotAllowed, selectors.RunNotFound) as error:
                self.message_user(request, f"run {run.pk}: {error}", messages.WARNING)
        if ok:
            self.message_user(request, f"{done} {ok} run(s)", messages.SUCCESS)

    @admin.action(description="Stop selected runs")
    def stop_runs(self, request: HttpRequest, runs: QuerySet[Run]) -> None:
        self._each(request, runs, services.run_stop, "stop requested for")

    @admin.action(description="Resume selected runs")
    def resume_runs(self, request: HttpRequest, runs: QuerySet[Run]) -> None:
        self._each(request, runs, services.run_resume, "resumed")

    @admin.action(description="Clone selected runs")
    def clone_runs(self, request: HttpRequest, runs: QuerySet[Run]) -> None:
        self._each(request, runs, services.run_clone, "cloned")

    @admin.action(description="Export selected runs (JSON)")
    def export_runs(self, request: HttpRequest, runs: QuerySet[Run]) -> HttpResponse:
        data = [run_export_json(run) for run in runs.select_related("owner")]
        response = HttpResponse(json.dumps(data, default=str), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="runs.json"'
        return response


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    """Every evaluation, read-only: they are written by training and the evaluate workers."""

    list_display = (
        "id",
        "run",
        "kind",
        "status",
        "episode",
        "total_pieces",
        "score",
        "best",
        "created_at",
    )
    list_filter = ("kind", "status", "best")
    search_fields = ("run__name",)
    list_select_related = ("run",)
    list_per_page = 50
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Evaluation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Evaluation | None = None) -> bool:
        return False

    @admin.display(description="lines per game (95% CI)")
    def score(self, evaluation: Evaluation) -> str:
        return evaluation_score(evaluation)
