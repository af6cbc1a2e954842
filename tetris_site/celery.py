"""The Celery app. Workers train on queue `training`, one run per worker process, play
checkpoints for viewers on queue `play`, and play evaluation chunks on queue `evaluate`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tetris_site.settings")

app = Celery("tetris_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# What a worker does as it starts and stops: torch threads, liveness, the sweep.
import tetris_site.worker_lifecycle  # noqa: E402, F401
