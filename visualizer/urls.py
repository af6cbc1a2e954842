"""Viewer pages, and the static files when no proxy serves them."""

import re

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import path, re_path

from visualizer import compare, experiments, views

# daphne serves no files of its own. With `make run` there is no proxy in front, so the
# app serves static/ itself (public: the sign-in page needs its stylesheet); behind a
# proxy, the proxy answers /static/ from STATIC_ROOT and requests never reach this route.
STATIC_PREFIX = re.escape(settings.STATIC_URL.lstrip("/"))

urlpatterns = [
    path("", views.index, name="index"),
    path("runs/new/", views.run_new, name="run-new"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/delete/", views.run_delete, name="run-delete"),
    path("runs/<int:run_id>/play/", views.run_play, name="run-play"),
    path("runs/<int:run_id>/replay/<slug:kind>/", views.run_replay, name="run-replay"),
    path("play/versus/", views.versus_play, name="versus-play"),
    path("play/<slug:controller>/", views.controller_play, name="controller-play"),
    path("compare/", compare.compare_runs, name="compare"),
    path("experiments/", experiments.experiment_list, name="experiments"),
    path("experiments/new/", experiments.experiment_new, name="experiment-new"),
    path(
        "experiments/<int:experiment_id>/", experiments.experiment_detail, name="experiment-detail"
    ),
    path(
        "experiments/<int:experiment_id>/stop/",
        experiments.experiment_stop,
        name="experiment-stop",
    ),
    path(
        "experiments/<int:experiment_id>/visibility/",
        experiments.experiment_visibility,
        name="experiment-visibility",
    ),
    re_path(
        rf"^{STATIC_PREFIX}(?P<path>.+)$",
        login_not_required(serve_static),
        {"insecure": True},
        name="static",
    ),
]
