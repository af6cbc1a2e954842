"""Run URLs outside the API."""

from django.urls import path

from trainer import views

urlpatterns = [
    path(
        "runs/<int:run_id>/checkpoints/<int:checkpoint_id>/download",
        views.checkpoint_download,
        name="checkpoint-download",
    ),
]
