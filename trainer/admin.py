"""The admin is the run history: list, filter, stop, resume, clone, export, delete; each
run's checkpoints, best games and evaluations; every evaluation, read-only; experiments
with their configurations, read-only but for a stop.

Every change goes through the services, as the API's do: a delete is `run_delete` (it
refuses a run a worker holds and removes the checkpoint files), a visibility change is
`run_set_visibility` (viewers who lost access are cut off), and a config is validated as
`TrainConfig`. Django's model permissions (`change_run`, `delete_run`) are the admin's
own check; past it, the admin acts as the run's owner, whose checks and side effects the
services apply unchanged.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as confirm_deletion
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from trainer import experiments, selectors, services
from trainer.exporting import evaluation_summary, export_response, runs_json_chunks
from trainer.models import (
    BestGame,
    Checkpoint,
    Evaluation,
    Experiment,
    ExperimentTrial,
    InvalidTransition,
    Metric,
    Run,
)
from trainer.rl.confidence import score_text
from trainer.rl.config import STATE_SHAPING, ConfigError, TrainConfig
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


# A config can change only while no worker holds the run or will take it: a stopped or
# failed run takes its new config when it is resumed. A queued run may be taken at any
# moment (stop it first); a running one trains with the config it read; a finished one is
# history. Elsewhere the config is shown read-only.
CONFIGURABLE = (Run.Status.STOPPED, Run.Status.FAILED)


class RunForm(forms.ModelForm):
    """A run's editable fields; its config is validated as the services validate one."""

    class Meta:
        model = Run
        fields = "__all__"

    def clean_config(self) -> dict:
        """The config as `TrainConfig` reads it (every field filled in), or each bad field."""
        config = self.cleaned_data["config"]
        if not isinstance(config, dict):
            raise forms.ValidationError("must be an object of setting names to values")
        try:
            config = TrainConfig.from_dict(config).to_dict()
        except ConfigError as error:
            raise forms.ValidationError(
                [f"{name}: {message}" for name, message in error.errors.items()]
            ) from None
        # A run with a checkpoint resumes from it: what shapes the saved state stays.
        run = self.instance
        if run.pk and run.checkpoints.exists():
            changed = [
                f"{name}: must stay {run.config.get(name)!r} to resume from its checkpoints"
                for name in STATE_SHAPING
                if config.get(name) != run.config.get(name)
            ]
            if changed:
                raise forms.ValidationError(changed)
        return config


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    form = RunForm
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
        "owner",
        "algorithm",
        "preset",
        "seed",
        "queued_at",
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
        "experiment",
        "trial",
        "seed_index",
        "pruned",
        "retries",
        "final_evaluation",
    )
    exclude = ("curve", "best_evaluation")
    inlines = [CheckpointInline, BestGameInline, EvaluationInline]
    actions = ["stop_runs", "resume_runs", "clone_runs", "export_runs", "delete_selected"]

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

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A run starts through the services (validated, then queued), from the pages, the
        # API or `manage.py train`; a row added here would wait for a worker forever.
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Run | None = None) -> tuple:
        if obj is not None and obj.status not in CONFIGURABLE:
            return (*self.readonly_fields, "config")
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Run, form: RunForm, change: bool) -> None:
        changed = set(form.changed_data)
        fields = [name for name in ("name", "config") if name in changed]
        if "config" in changed:
            obj.algorithm, obj.seed = obj.config["algorithm"], obj.config["seed"]
            fields += ["algorithm", "seed"]
        if fields:
            obj.save(update_fields=fields)
        if "visibility" in changed:
            services.run_set_visibility(run=obj, user=obj.owner, visibility=obj.visibility)

    def get_deleted_objects(
        self, objs: QuerySet[Run] | list[Run], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        # Counted, not listed: Django would load and list each of a run's metric rows
        # (millions), and refuse for want of a permission to delete evaluations, which
        # the admin never deletes on their own.
        runs = list(objs)
        counts = Metric.objects.filter(run__in=runs).values("run").annotate(rows=Count("id"))
        rows = {entry["run"]: entry["rows"] for entry in counts}
        listed = [f"{run} ({rows.get(run.pk, 0):,} metric rows)" for run in runs]
        return listed, {"runs": len(runs), "metric rows": sum(rows.values())}, set(), []

    def delete_model(self, request: HttpRequest, obj: Run) -> None:
        services.run_delete(run=obj, user=obj.owner)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except InvalidTransition as error:
            # Refused before anything was deleted; the log entry is rolled back with it.
            self.message_user(request, f"not deleted: {error}", messages.ERROR)
            change = reverse("admin:trainer_run_change", args=[object_id])
            return HttpResponseRedirect(change)

    @admin.action(description="Delete selected runs", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, runs: QuerySet[Run]) -> TemplateResponse | None:
        # Named as Django's own action, which it replaces: its confirmation page posts
        # back to this name.
        if not request.POST.get("post"):
            return confirm_deletion(self, request, runs)
        deleted = 0
        for run in runs.select_related("owner"):
            try:
                with transaction.atomic():
                    self.log_deletions(request, [run])
                    services.run_delete(run=run, user=run.owner)
                deleted += 1
            except InvalidTransition as error:
                self.message_user(request, f"run {run.pk} not deleted: {error}", messages.ERROR)
        if deleted:
            self.message_user(request, f"deleted {deleted} run(s)", messages.SUCCESS)
        return None

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
    def export_runs(self, request: HttpRequest, runs: QuerySet[Run]) -> StreamingHttpResponse:
        chunks = runs_json_chunks(runs.select_related("owner"))
        return export_response(
            request, chunks, content_type="application/json", filename="runs.json"
        )


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


class TrialInline(admin.TabularInline):
    model = ExperimentTrial
    fields = ("number", "params", "state", "value", "created_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return False


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """Experiments and their configurations; they change only through their scheduler and
    `experiment_stop`, so everything here is read-only."""

    list_display = (
        "id",
        "name",
        "status",
        "owner",
        "sampler",
        "trials",
        "seeds",
        "best",
        "created_at",
    )
    list_display_links = ("id", "name")
    list_filter = ("status", "sampler", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name",)
    list_select_related = ("owner",)
    list_per_page = 50
    show_full_result_count = False
    exclude = ("summary",)
    inlines = [TrialInline]
    actions = ["stop_experiments"]

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> list:
        return [field.name for field in Experiment._meta.fields if field.name != "summary"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="best configuration: IQM (95% CI)")
    def best(self, experiment: Experiment) -> str:
        summary = experiment.summary or {}
        ranking = summary.get("ranking") or []
        if not ranking:
            return "\N{EN DASH}"
        top = next(c for c in summary["configurations"] if c["trial"] == ranking[0])
        settings = ", ".join(f"{key}={value}" for key, value in top["params"].items())
        return (
            f"#{top['trial']} {settings}: {top['iqm']:,.1f} "
            f"({top['ci95_low']:,.1f}\N{EN DASH}{top['ci95_high']:,.1f})"
        )

    @admin.action(description="Stop selected experiments")
    def stop_experiments(self, request: HttpRequest, chosen: QuerySet[Experiment]) -> None:
        for experiment in chosen:
            # As its owner, like the run actions: the model permission was the check.
            experiments.experiment_stop(experiment=experiment, user=experiment.owner)
        self.message_user(request, f"stopped {len(chosen)} experiment(s)", messages.SUCCESS)
