"""The compare page: several runs' learning curves overlaid, and their settings side by side.

The page renders the runs and their settings; static/js/compare.js fetches the curves,
downsampled on the server, from the compare API and draws them.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from trainer import selectors
from trainer.models import Run
from visualizer.versus import versus_choices

# Points per run that the page asks for: ten runs stay ten thousand points per chart.
COMPARE_POINTS = 1000
# One colour per run, distinct on the dark page; the table and the curves share them.
PALETTE = (
    "#4fc3f7",
    "#ffb74d",
    "#81c784",
    "#f06292",
    "#ba68c8",
    "#fff176",
    "#4db6ac",
    "#e57373",
    "#9fa8da",
    "#bcaaa4",
    "#aed581",
    "#ff8a65",
    "#90caf9",
    "#dce775",
    "#f48fb1",
    "#80cbc4",
    "#ce93d8",
    "#ffcc80",
    "#b0bec5",
    "#c5e1a5",
)


def setting_text(value: object) -> str:
    """A setting as the table shows it: 1,000,000 and 0.001, a dash when a run lacks it."""
    if value is None:
        return "\N{EN DASH}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return format(value, ",.10g")
    return str(value)


@require_GET
def compare_runs(request: HttpRequest) -> HttpResponse:
    """The learning curves of the runs in ?runs=1,2,3 overlaid, and their settings compared."""
    try:
        run_ids = selectors.parse_run_ids(request.GET.get("runs", ""))
    except ValueError as error:
        context = {"error": f"runs: {error}"}
        return render(request, "visualizer/compare.html", context, status=400)
    try:
        runs = selectors.runs_for_comparison(request.user, run_ids)
    except selectors.RunNotFound:
        raise Http404("run not found") from None
    colors = [PALETTE[index % len(PALETTE)] for index in range(len(runs))]
    query = urlencode({"runs": ",".join(str(run.pk) for run in runs)})
    settings = [
        {**row, "shown": [setting_text(value) for value in row["values"]]}
        for row in selectors.config_differences(runs)
    ]
    page = {
        "runs": [_run_entry(run, color) for run, color in zip(runs, colors, strict=True)],
        "data_url": f"{reverse('api-1:compare')}?{query}&max_points={COMPARE_POINTS}",
    }
    choices = versus_choices(runs)
    context = {
        "runs": list(zip(runs, colors, strict=True)),
        "settings": settings,
        "differing": sum(row["differs"] for row in settings),
        "points": COMPARE_POINTS,
        "csv_url": f"{reverse('api-1:compare_export_csv')}?{query}",
        "json_url": f"{reverse('api-1:compare_export_json')}?{query}",
        "page": page,
        "versus_choices": choices,
        "versus_selected": [choice["value"] for choice in choices[:2]],
    }
    return render(request, "visualizer/compare.html", context)


def _run_entry(run: Run, color: str) -> dict:
    return {"id": run.pk, "name": run.name, "color": color, "algorithm": run.algorithm}
