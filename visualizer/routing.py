"""WebSocket URL routes."""

from django.urls import path

from visualizer.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
]
