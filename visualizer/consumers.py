"""WebSocket consumers: the live stream of one run to a browser."""

from __future__ import annotations

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from trainer import selectors, services
from trainer.exporting import run_summary
from trainer.models import InvalidTransition, Run
from visualizer import bridge

MAX_MESSAGE_BYTES = 4096
SNAPSHOT_POINTS = 1500
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class RunConsumer(AsyncWebsocketConsumer):
    """Streams a run's frames, metrics and status to one viewer; takes stop and start."""

    async def connect(self) -> None:
        # Accept before any close: a close before accept is a bare HTTP 403, and the
        # browser could not tell "sign in again" from "server down".
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if not await self._may_still_see():
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Join before reading the snapshot: whatever is published meanwhile is queued for
        # this consumer and relayed after it (the page ignores points it already has).
        self.group = bridge.run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await self._snapshot()
        if snapshot is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        snapshot["frame"] = await bridge.last_frame(self.group)
        await self.send(text_data=bridge.encode("snapshot", snapshot))

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    @database_sync_to_async
    def _snapshot(self) -> dict | None:
        try:
            run = selectors.run_for_viewer(self.scope["user"], self.run_id)
        except selectors.RunNotFound:
            return None
        points, total = selectors.run_metric_points(run, max_points=SNAPSHOT_POINTS)
        summary = run_summary(run)
        summary["can_control"] = selectors.can_control(self.scope["user"], run)
        summary["can_stop"] = selectors.can_stop(self.scope["user"], run)
        return {"run": summary, "metrics": {"points": points, "total": total}, "frame": None}

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
            await self.send_error(
                f"messages must be JSON text of at most {MAX_MESSAGE_BYTES} bytes"
            )
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json goes
            await self.send_error("message is not valid JSON")
            return
        if not isinstance(message, dict) or not isinstance(message.get("command"), str):
            await self.send_error('expected an object like {"command": "stop"}')
            return
        command = message["command"]
        if command not in {"stop", "start"}:
            await self.send_error(f"unknown command {command[:50]!r}; use stop or start")
            return
        error = await self._command(command)
        if error:
            await self.send_error(error)

    @database_sync_to_async
    def _command(self, command: str) -> str | None:
        user = self.scope["user"]
        try:
            run = selectors.run_for_viewer(user, self.run_id)
            if command == "stop":
                services.run_stop(run=run, user=user)
            elif run.status in (Run.Status.STOPPED, Run.Status.FAILED):
                services.run_resume(run=run, user=user)
            else:
                return f"run {run.pk} is {run.status}: only a stopped or failed run can start"
        except (selectors.RunNotFound, selectors.NotAllowed, InvalidTransition) as error:
            return str(error)
        return None

    async def send_error(self, error: str) -> None:
        """Answer bad input with an `error` message; the socket stays open."""
        await self.send(text_data=bridge.encode("error", {"error": error}))

    async def access_changed(self, event: dict) -> None:
        """The run's visibility changed: close the socket if this viewer lost access."""
        if not await self._may_still_see():
            await self.close(code=CLOSE_FORBIDDEN)

    @database_sync_to_async
    def _may_still_see(self) -> bool:
        try:
            selectors.run_for_viewer(self.scope["user"], self.run_id)
        except selectors.RunNotFound:
            return False
        return True

    async def broadcast(self, event: dict) -> None:
        """Relay a pre-encoded frame, metrics or status message from the bridge."""
        await self.send(text_data=event["text"])
