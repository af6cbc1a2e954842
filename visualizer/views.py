"""Viewer pages: thin adapters that read through selectors and render templates.

The pages render what the server knows at request time; static/js/*.js keeps them live
(the run list polls the JSON API, the viewer listens on the run's WebSocket).
"""

from __future__ import annotations

import base64

import redis
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from trainer import plays, selectors, services
from trainer.models import Checkpoint, InvalidTransition
from trainer.queues import QueueUnavailable
from trainer.rl.confidence import score_text
from trainer.rl.config import ConfigError
from trainer.sparkline import sparkline_points
from visualizer.forms import RunForm, preset_values
from visualizer.versus import versus_choices

RUN_LIST_LIMIT = 200
RUN_LIST_POLL_SECONDS = 3


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The runs the user may see, kept live by static/js/runs.js."""
    runs = list(selectors.runs_visible_to(request.user)[:RUN_LIST_LIMIT])
    rows = [
        {
            "run": run,
            "sparkline": sparkline_points(run.curve),
            "score": score_text(run.best_evaluation),
        }
        for run in runs
    ]
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
    status = 200
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
        except services.LimitReached as error:
            form.add_error(None, str(error))
            status = 429
        except QueueUnavailable:
            form.add_error(None, "the task queue is unavailable: no run was created; try again")
            status = 503
        else:
            return redirect("run-detail", run_id=run.pk)
    context = {"form": form, "presets": preset_values()}
    return render(request, "visualizer/run_new.html", context, status=status)


@require_POST
def run_delete(request: HttpRequest, run_id: int) -> HttpResponse:
    """Delete a run the user owns, with its metrics and checkpoints; then the run list."""
    try:
        run = selectors.run_for_viewer(request.user, run_id)
        services.run_delete(run=run, user=request.user)
    except selectors.RunNotFound:
        raise Http404("run not found") from None
    except (selectors.NotAllowed, InvalidTransition) as error:
        status = 403 if isinstance(error, selectors.NotAllowed) else 409
        context = {"title": "This run cannot be deleted", "message": str(error)}
        return render(request, "visualizer/unavailable.html", context, status=status)
    return redirect("index")


@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """The live viewer of one run: board, figures, charts and controls."""
    try:
        run = selectors.run_for_viewer(request.user, run_id)
    except selectors.RunNotFound:
        raise Http404("run not found") from None
    # The best-evaluated checkpoint first (the one worth watching), then the newest ones.
    checkpoints = sorted(
        selectors.run_checkpoints(run), key=lambda c: c.kind != Checkpoint.Kind.BEST
    )
    page = {
        "run_id": run.pk,
        "algorithm": run.algorithm,
        "width": run.config.get("width", 10),
        "height": run.config.get("height", 20),
        "socket_path": f"/ws/runs/{run.pk}/",
        "run_url": reverse("api-1:get_run", args=[run.pk]),
        "play_url": reverse("run-play", args=[run.pk]),
        "login_url": reverse("login"),
    }
    context = {
        "run": run,
        "page": page,
        "kept_score": score_text(run.best_evaluation),
        "can_delete": selectors.can_control(request.user, run),
        "checkpoints": checkpoints,
        "best_games": selectors.run_best_games(run),
        "controllers": plays.REFERENCE_CONTROLLERS,
    }
    return render(request, "visualizer/run_detail.html", context)


def _requested_pps(request: HttpRequest) -> int:
    try:
        return plays.clamp_pps(float(request.GET.get("pps", plays.DEFAULT_PPS)))
    except ValueError:
        return plays.DEFAULT_PPS


def _plays_unavailable(request: HttpRequest) -> HttpResponse:
    context = {
        "title": "Live play is unavailable",
        "message": "Plays are coordinated through Redis, which cannot be reached right "
        "now. Training and the run history are not affected; try again in a moment.",
    }
    return render(request, "visualizer/unavailable.html", context, status=503)


def _play_page(request: HttpRequest, extra: dict, **play: object) -> HttpResponse:
    """Prepare a play and render its page; 503 with an explanation if Redis is away."""
    try:
        spec = services.play_create(user=request.user, pps=_requested_pps(request), **play)
    except redis.RedisError:
        return _plays_unavailable(request)
    return _play_page_for(request, spec, extra)


def _play_page_for(request: HttpRequest, spec: plays.PlaySpec, extra: dict) -> HttpResponse:
    page = {
        "mode": "live",
        "socket_path": f"/ws/play/{spec.token}/",
        "width": spec.width,
        "height": spec.height,
        "pps": spec.pps,
        "min_pps": plays.MIN_PPS,
        "max_pps": plays.MAX_PPS,
        "login_url": reverse("login"),
        "versus": extra.get("versus"),
    }
    runs = extra.pop("versus_runs", [extra["run"]] if "run" in extra else [])
    choices = versus_choices(runs, extra.get("checkpoint"))
    values = [choice["value"] for choice in choices]
    context = {
        "page": page,
        "versus_choices": choices,
        # What the form offers first: what is being watched, then something else.
        "versus_selected": extra.pop("versus_selected", values[:2]),
        "controllers": plays.REFERENCE_CONTROLLERS,
        "subtitle": f"{spec.width} by {spec.height} board, {spec.randomizer} pieces",
        "detail": "waiting for a worker…",
        **extra,
    }
    return render(request, "visualizer/play.html", context)


@require_GET
def run_play(request: HttpRequest, run_id: int) -> HttpResponse:
    """Watch one of a run's checkpoints play (?checkpoint=<id>, default the newest)."""
    try:
        run = selectors.run_for_viewer(request.user, run_id)
        checkpoint_id = request.GET.get("checkpoint")
        checkpoint = selectors.run_checkpoint(
            run, int(checkpoint_id) if checkpoint_id is not None else None
        )
    except (selectors.RunNotFound, ValueError):
        raise Http404("run or checkpoint not found") from None
    if checkpoint is None:
        raise Http404("this run has no such checkpoint")
    extra = {
        "run": run,
        "checkpoint": checkpoint,
        "checkpoints": selectors.run_checkpoints(run),
        "title": f"Checkpoint at episode {checkpoint.episode:,}",
    }
    return _play_page(request, extra, run=run, checkpoint=checkpoint)


@require_GET
def versus_play(request: HttpRequest) -> HttpResponse:
    """Two policies side by side on the same pieces: ?a=<side>&b=<side>, each
    `checkpoint:<id>` or `controller:<name>`."""
    try:
        first = services.play_side(request.user, request.GET.get("a", ""))
        rival = services.play_side(request.user, request.GET.get("b", ""))
        spec = services.play_create(
            user=request.user, rival=rival, pps=_requested_pps(request), **vars(first)
        )
    except selectors.RunNotFound:
        raise Http404("run or checkpoint not found") from None
    except ValueError as error:
        context = {"title": "These two cannot play side by side", "message": str(error)}
        return render(request, "visualizer/unavailable.html", context, status=400)
    except redis.RedisError:
        return _plays_unavailable(request)
    extra = {
        "title": "Side by side",
        "versus": [spec.label, spec.rival["label"]],
        "versus_runs": [side.run for side in (first, rival) if side.run is not None],
        "versus_selected": [request.GET["a"], request.GET["b"]],
    }
    return _play_page_for(request, spec, extra)


@require_GET
def controller_play(request: HttpRequest, controller: str) -> HttpResponse:
    """Watch a reference controller (Dellacherie, BCTS) play."""
    if controller not in plays.REFERENCE_CONTROLLERS:
        raise Http404("no such controller")
    title = f"{plays.REFERENCE_CONTROLLERS[controller]}, a reference controller"
    other = next(name for name in plays.REFERENCE_CONTROLLERS if name != controller)
    selected = [f"controller:{controller}", f"controller:{other}"]
    return _play_page(request, {"title": title, "versus_selected": selected}, controller=controller)


@require_GET
def run_replay(request: HttpRequest, run_id: int, kind: str) -> HttpResponse:
    """Replay a run's best training or evaluation game in the browser, from its placements."""
    try:
        run = selectors.run_for_viewer(request.user, run_id)
    except selectors.RunNotFound:
        raise Http404("run not found") from None
    game = selectors.run_best_game(run, kind)
    if game is None:
        raise Http404("this run has no such game yet")
    actions = bytes(game.actions)
    page = {
        "mode": "replay",
        "width": game.width,
        "height": game.height,
        "pps": _requested_pps(request),
        "min_pps": plays.MIN_PPS,
        "max_pps": plays.MAX_PPS,
        "replay": {
            "kind": game.kind,
            "seed": str(game.seed),  # a JSON number loses digits past 2**53
            "width": game.width,
            "height": game.height,
            "randomizer": game.randomizer,
            "actions": base64.b64encode(actions).decode("ascii"),
            "lines": game.lines,
            "score": game.score,
            "pieces": game.pieces,
            "episode": game.episode,
            "policy": game.policy,
        },
    }
    which = "training game" if kind == "train" else "evaluation game"
    number = f"episode {game.episode:,}" if kind == "train" else f"game {game.episode}"
    cut = "" if len(actions) == game.pieces else f", replaying its first {len(actions):,}"
    context = {
        "run": run,
        "page": page,
        "controllers": plays.REFERENCE_CONTROLLERS,
        "title": f"Best {which}: {game.lines:,} lines",
        "subtitle": (
            f"{number} · {game.pieces:,} pieces{cut} · {game.width} by {game.height} board, "
            f"{game.randomizer} pieces, seed {game.seed}"
        ),
        "detail": "",
    }
    return render(request, "visualizer/play.html", context)
