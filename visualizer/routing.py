"""WebSocket URL routes."""

from django.urls import path

from visualizer.consumers import ExperimentConsumer, PlayConsumer, RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
    path("ws/play/<str:token>/", PlayConsumer.as_asgi()),
    path("ws/experiments/<int:experiment_id>/", ExperimentConsumer.as_asgi()),
]
