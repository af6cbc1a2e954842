"""WebSocket consumers: the live stream of one run, or of one play, to a browser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math

import redis
from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from live.names import play_group, run_group, run_plays_group
from live.protocol import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, Envelope, Error, snapshot_json
from trainer import plays, selectors, services
from trainer.exporting import run_summary, run_watch_lists
from trainer.models import InvalidTransition
from visualizer import crowd, snapshots
from visualizer.delivery import ViewerStream
from visualizer.hub import hub, last_frame
from visualizer.socket_writer import SCOPE_KEY

MAX_MESSAGE_BYTES = 4096


def parse_command(text_data: str | None, *, example: str) -> tuple[dict, str]:
    """A client's message as a dict with a string `command`, or what is wrong with it."""
    if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
        return {}, f"messages must be JSON text of at most {MAX_MESSAGE_BYTES} bytes"
    try:
        message = json.loads(text_data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json goes
        return {}, "message is not valid JSON"
    if not isinstance(message, dict) or not isinstance(message.get("command"), str):
        return {}, f'expected an object like {{"command": "{example}"}}'
    return message, ""


class StreamConsumer(AsyncWebsocketConsumer):
    """What the run and play consumers share: the live stream from the hub, and errors.

    The hub hands this process's viewers each published message (see visualizer/hub.py).
    Under daphne it goes straight to the socket, framed once for all viewers
    (visualizer/socket_writer.py); elsewhere through the ASGI `send`. What arrives before
    the snapshot is sent is held for after it (visualizer/delivery.py). Control events
    are dispatched to the handler named after their kind.
    """

    stream_group: str | None = None
    stream: ViewerStream | None = None
    overlay = False  # whether this socket's frames carry the policy's options

    async def start_stream(self, group: str) -> None:
        """Join the hub for `group`, holding its messages until `release`."""
        self.stream, self.stream_group = ViewerStream(), group
        self.control_tasks: set[asyncio.Task] = set()
        await hub.join(group, self)

    async def relay(self, message: Envelope) -> None:
        """Take one message from the hub: send it, hold it, or act on it (control events)."""
        if message.is_control:
            # Off the hub's loop over viewers: the handler may read the database.
            task = asyncio.create_task(getattr(self, message.kind)())
            self.control_tasks.add(task)
            task.add_done_callback(self.control_tasks.discard)
        elif self.stream is not None and self.stream.offer(message):
            await self._send_stream(message)

    async def last_frame(self) -> Envelope | None:
        """The stream's last frame, for the snapshot; no older board follows it."""
        frame = await last_frame(self.stream_group)
        self.stream.snapshot_shows(frame)
        return frame if frame is None or self.overlay else frame.without_options

    async def release(self) -> None:
        """Send what was held, in order, then send messages as they come."""
        while self.stream is not None and (message := self.stream.next_held()) is not None:
            await self._send_stream(message)

    async def _send_stream(self, message: Envelope) -> None:
        if not self.overlay:
            message = message.without_options
        writer = self.scope.get(SCOPE_KEY)
        if writer is not None and writer.write(message):
            return
        try:
            await self.send(text_data=message.text)
        except Disconnected:  # closed under us; its disconnect is on its way
            await self.leave_stream()

    async def websocket_connect(self, message: dict) -> None:
        try:
            await super().websocket_connect(message)
        except BaseException:
            # The consumer is gone (daphne closes the socket with 1011) and will never see
            # its disconnect: the hub must not keep handing it messages.
            await self.leave_stream()
            raise

    async def websocket_disconnect(self, message: dict) -> None:
        await self.leave_stream()
        await super().websocket_disconnect(message)

    async def leave_stream(self) -> None:
        """Stop taking the hub's messages (again is harmless)."""
        if self.stream_group is not None:
            await hub.leave(self.stream_group, self)
            self.stream_group, self.stream = None, None

    async def set_overlay(self, message: dict) -> None:
        """`{"command": "overlay", "on": true}`: this socket's frames carry the options of
        the policy (the worker sends them while any viewer has the overlay on)."""
        on = message.get("on")
        if not isinstance(on, bool):
            await self.send_error('overlay needs "on": true or false')
            return
        self.overlay = on
        if self.stream_group is not None:
            await hub.want_options(self.stream_group, self, on)

    async def send_error(self, error: str) -> None:
        """Answer bad input with an `error` message; the socket stays open."""
        await self.send(text_data=Error(error).to_json())


class RunConsumer(StreamConsumer):
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
        # Join before reading the snapshot: whatever is published meanwhile is held for
        # this consumer and relayed after it (the page ignores points it already has). A
        # viewer who may not see the run is closed before anything held is sent.
        await self.start_stream(run_group(self.run_id))
        run = await crowd.database.call(self._run_for_snapshot)
        if run is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        metrics = await snapshots.metrics_json.get(self.run_id)
        frame = await self.last_frame()
        snapshot = snapshot_json(run, metrics=metrics, frame=frame and frame.text)
        await self.send(text_data=snapshot)
        await self.release()

    def _run_for_snapshot(self) -> dict | None:
        try:
            run = selectors.run_for_viewer(self.scope["user"], self.run_id)
        except selectors.RunNotFound:
            return None
        summary = run_summary(run)
        summary["can_control"] = selectors.can_control(self.scope["user"], run)
        summary["can_stop"] = selectors.can_stop(self.scope["user"], run)
        return {"run": summary, **run_watch_lists(run)}

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message, error = parse_command(text_data, example="stop")
        if error:
            await self.send_error(error)
            return
        command = message["command"]
        if command == "overlay":
            await self.set_overlay(message)
            return
        if command not in {"stop", "start"}:
            await self.send_error(f"unknown command {command[:50]!r}; use stop, start or overlay")
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
            else:
                services.run_start_or_resume(run=run, user=user)
        except (selectors.RunNotFound, selectors.NotAllowed, InvalidTransition) as error:
            return str(error)
        return None

    async def access_changed(self) -> None:
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


PLAY_COMMANDS = ("speed", "pause", "resume", "step", "restart", "overlay")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class PlayConsumer(StreamConsumer):
    """Streams one play's frames and status to its viewer; takes speed, pause, step, restart.

    While the socket is open the consumer keeps the viewer's presence fresh in Redis: the
    play's task ends once no viewer is left.
    """

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.token = self.scope["url_route"]["kwargs"]["token"]
        spec = await self._spec()
        if spec is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.redis = plays.async_client()
        # Join first, as RunConsumer does; a run's plays also hear when it goes private.
        await self.start_stream(play_group(self.token))
        # A side-by-side play also hears when its second run goes private.
        rival_run = spec.rival and spec.rival.get("run_id")
        self.run_plays = [run_plays_group(r) for r in (spec.run_id, rival_run) if r is not None]
        for group in self.run_plays:
            await hub.join(group, self)
        try:
            await plays.viewer_seen(self.redis, self.token, self.channel_name)
            await self._join()
            status = await plays.last_status(self.redis, self.token)
        except (redis.RedisError, plays.PlayNotFound):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.presence = asyncio.create_task(self._keep_watching())
        play = spec.as_dict()
        play.pop("user_id")
        frame = await self.last_frame()
        snapshot = snapshot_json({"play": play, "status": status}, frame=frame and frame.text)
        await self.send(text_data=snapshot)
        await self.release()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "presence"):
            self.presence.cancel()
        for group in getattr(self, "run_plays", ()):
            await hub.leave(group, self)
        if hasattr(self, "redis"):
            with contextlib.suppress(redis.RedisError):
                await plays.viewer_gone(self.redis, self.token, self.channel_name)
            await self.redis.aclose()

    async def _keep_watching(self) -> None:
        while True:
            await asyncio.sleep(plays.VIEWER_REFRESH_SECONDS)
            with contextlib.suppress(redis.RedisError):
                await plays.viewer_seen(self.redis, self.token, self.channel_name)

    @database_sync_to_async
    def _spec(self) -> plays.PlaySpec | None:
        try:
            return services.play_for_viewer(user=self.scope["user"], token=self.token)
        except (plays.PlayNotFound, redis.RedisError):
            return None

    @database_sync_to_async
    def _join(self) -> plays.PlaySpec:
        return services.play_join(user=self.scope["user"], token=self.token)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message, error = parse_command(text_data, example="pause")
        if error:
            await self.send_error(error)
            return
        command = message["command"]
        if command not in PLAY_COMMANDS:
            await self.send_error(
                f"unknown command {command[:50]!r}; use one of {', '.join(PLAY_COMMANDS)}"
            )
            return
        if command == "overlay":
            await self.set_overlay(message)
            return
        try:
            if command == "speed":
                pps = message.get("pps")
                if not _is_number(pps):
                    await self.send_error(
                        f"speed needs pps, a number from {plays.MIN_PPS} to {plays.MAX_PPS}"
                    )
                    return
                await plays.set_speed(self.redis, self.token, pps)
            elif command in ("pause", "resume"):
                await plays.set_paused(self.redis, self.token, command == "pause")
            elif command == "step":
                await plays.step(self.redis, self.token)
            else:
                await plays.restart(self.redis, self.token)
        except redis.RedisError:
            await self.send_error("the play cannot be reached right now; try again")

    async def access_changed(self) -> None:
        """The run went private: close the socket if this viewer lost access."""
        if await self._spec() is None:
            await self.close(code=CLOSE_FORBIDDEN)
