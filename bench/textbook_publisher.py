"""Loaded into a benchmark worker with `--include bench.textbook_publisher`: frames and
metrics go out the textbook way, `async_to_sync(channel_layer.group_send)` per message,
blocking the training loop for each send. The bridge is replaced for comparison only."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from visualizer import bridge


def _send_now(group: str, text: str) -> None:
    async_to_sync(get_channel_layer().group_send)(group, {"type": "broadcast", "text": text})


def publish(group: str, kind: str, payload: dict) -> None:
    """Send one message, waiting for Redis."""
    _send_now(group, bridge.encode(kind, payload))


def publish_frame(group: str, payload: dict) -> None:
    """Send one frame, waiting for Redis."""
    _send_now(group, bridge.encode("frame", payload))


bridge.publish = publish
bridge.publish_frame = publish_frame
