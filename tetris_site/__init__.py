"""Tetris Trainer's Django project: settings, URLs, ASGI entry point and Celery app."""

from tetris_site.celery import app as celery_app

__all__ = ["celery_app"]
