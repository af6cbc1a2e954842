"""Viewer pages: thin adapters that read through selectors and render templates.

The pages render what the server knows at request time; static/js/*.js keeps them live
(the run list polls the JSON API, the viewer listens on the run's WebSocket).
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from trainer import selectors, services
from trainer.rl.config import ConfigError
from visualizer.forms import RunForm, preset_values

RUN_LIST_LIMIT = 200
RUN_LIST_POLL_SECONDS = 3
SPARKLINE_WIDTH, SPARKLINE_HEIGHT = 120, 28


def sparkline_points(curve: list[list[float]]) -> str:
    """An SVG polyline's points for a run's stored curve of (episode, mean lines) pairs."""
    if len(curve) < 2:
        return ""
    xs, ys = [point[0] for point in curve], [point[1] for point in curve]
    x_span, y_low = (max(xs) - min(xs)) or 1, min(ys)
    y_span = (max(ys) - y_low) or 1
    return " ".join(
        f"{(x - xs[0]) / x_span * SPARKLINE_WIDTH:.1f},"
        f"{SPARKLINE_HEIGHT - (y - y_low) / y_span * SPARKLINE_HEIGHT:.1f}"
        for x, y in zip(xs, ys, strict=True)
    )


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The runs the user may see, kept live by static/js/runs.js."""
    runs = list(selectors.runs_visible_to(request.user)[:RUN_LIST_LIMIT])
    rows = [{"run": run, "sparkline": sparkline_points(run.curve)} for run in runs]
    page = {
        "runs_url": f"{reverse('api-1:list_runs')}?limit={RUN_LIST_LIMIT}",
        "compare_url": "/compare/",
        "poll_seconds": RUN_LIST_POLL_SECONDS,
    }
    return render(request, "visualizer/index.html", {"rows": rows, "page": page})


@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest) -> HttpResponse:
    """The new-run form; a valid one creates and queues the run, then shows it."""
    form = RunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.run_create_and_start(
                owner=request.user,
                name=form.cleaned_data["name"],
                preset=form.cleaned_data["preset"],
                visibility=form.cleaned_data["visibility"],
                config=form.config_overrides(),
            )
        except ConfigError as error:
            form.add_config_errors(error.errors)
        else:
            return redirect("run-detail", run_id=run.pk)
    context = {"form": form, "presets": preset_values()}
    return render(request, "visualizer/run_new.html", context)


@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """The live viewer of one run: board, figures, charts and controls."""
    try:
        run = selectors.run_for_viewer(request.user, run_id)
    except selectors.RunNotFound:
        raise Http404("run not found") from None
    page = {
        "run_id": run.pk,
        "algorithm": run.algorithm,
        "width": run.config.get("width", 10),
        "height": run.config.get("height", 20),
        "socket_path": f"/ws/runs/{run.pk}/",
        "run_url": reverse("api-1:get_run", args=[run.pk]),
        "login_url": reverse("login"),
    }
    return render(request, "visualizer/run_detail.html", {"run": run, "page": page})
