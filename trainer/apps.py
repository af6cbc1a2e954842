from django.apps import AppConfig


class TrainerConfig(AppConfig):
    """Training runs: models, services, Celery tasks, admin, API and commands."""

    name = "trainer"
