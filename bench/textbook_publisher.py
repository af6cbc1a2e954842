"""Loaded into a benchmark worker with `--include bench.textbook_publisher`: frames and
metrics go out the textbook way, `async_to_sync(channel_layer.group_send)` per message,
blocking the training loop for each send, to the consumers of bench/textbook_asgi.py.
The bridge is replaced for comparison only."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from live import bridge
from live.protocol import Message


def publish(group: str, message: Message) -> None:
    """Send one message to the group's Channels consumers, waiting for Redis."""
    send = async_to_sync(get_channel_layer().group_send)
    send(group, {"type": "broadcast", "text": message.to_json()})


bridge.publish = publish
