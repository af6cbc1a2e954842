"""WebSocket consumers: the live stream of one run to a browser."""

import json

from channels.generic.websocket import AsyncWebsocketConsumer

from visualizer.bridge import encode, run_group

MAX_MESSAGE_BYTES = 4096
CLOSE_UNAUTHENTICATED = 4401


class RunConsumer(AsyncWebsocketConsumer):
    """Streams a run's frames, metrics and status to one viewer."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept first: a close before accept is a bare HTTP 403, and the browser
            # could not tell "sign in again" from "server down".
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.group = run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
            await self.send_error("messages must be JSON text of at most 4096 bytes")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.send_error("message is not valid JSON")
            return
        if not isinstance(message, dict) or "command" not in message:
            await self.send_error('expected an object like {"command": "stop"}')
            return
        await self.send_error(f"unknown command {message['command']!r}")

    async def send_error(self, error: str) -> None:
        """Answer bad input with an `error` message; the socket stays open."""
        await self.send(text_data=encode("error", {"error": error}))

    async def broadcast(self, event: dict) -> None:
        """Relay a pre-encoded frame, metrics or status message from the bridge."""
        await self.send(text_data=event["text"])
