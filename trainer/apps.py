from django.apps import AppConfig


class TrainerConfig(AppConfig):
    """Training runs: models, services, Celery tasks, admin, API and commands."""

    name = "trainer"

    def ready(self) -> None:
        from django.conf import settings

        from live import bridge

        # Read when the bridge connects, so a changed setting (tests) takes effect.
        bridge.configure(redis_url=lambda: settings.REDIS_URL)
