from django.apps import AppConfig


class VisualizerConfig(AppConfig):
    """Live viewer: Channels consumers, the worker-to-browser bridge and viewer pages."""

    name = "visualizer"
