"""WebSocket consumers: the live stream of one run, one play or one experiment to a browser.

A socket stays open only while its viewer may still watch: each web process checks its
open sockets again every ACCESS_RECHECK_SECONDS (`AccessWatch`), reading the user from
the session as Django does for a request, so a sign-out, a password change, a
deactivated account, a lost staff flag or a run or experiment gone private (even by a save
in the admin, which sends no event) closes the socket within a few seconds, with 4401 or
4403.
The `access_changed` event of a run going private closes its sockets at once, and a
command is checked against the session when it comes. A user may have
MAX_SOCKETS_PER_USER sockets open over all web processes (the next is closed with 4429),
and each socket may send MAX_COMMANDS_PER_SECOND commands (the rest are answered with
an `error` and ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from importlib import import_module
from types import SimpleNamespace

import redis
from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from live.names import experiment_group, play_group, run_group, run_plays_group
from live.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_TOO_MANY,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHENTICATED,
    Envelope,
    Error,
    snapshot_json,
)
from trainer import experiments, plays, queues, selectors, services
from trainer.experiment_summary import experiment_figures
from trainer.exporting import run_summary, run_watch_lists
from trainer.models import InvalidTransition
from visualizer import crowd, snapshots
from visualizer.delivery import Pace, ReaderPace, ViewerStream
from visualizer.hub import hub, last_frame
from visualizer.socket_writer import SCOPE_KEY

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4096
# How often each web process checks again that its open sockets' viewers may still watch:
# a revoked viewer's socket closes within this, plus one database hop.
ACCESS_RECHECK_SECONDS = 2.0
# Commands one socket may send a second (in bursts of as many); a page sends one a click.
MAX_COMMANDS_PER_SECOND = 20


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


@dataclasses.dataclass(frozen=True)
class SocketAccess:
    """What a socket was let in on, checked again while it is open: the session that
    signed it in, its user, and the runs and experiments it shows."""

    session_key: str | None
    user_id: int
    run_ids: tuple[int, ...]
    experiment_ids: tuple[int, ...] = ()


class AccessRevoked(Exception):
    """The viewer may no longer use the socket; `code` is the close code that says why."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _SessionRead(dict):
    """A session's data as read now, for Django's `get_user`. What that would change (a
    flush on a stale password hash, a new key after a secret-key rotation) is left to the
    browser's next request, which carries the cookie to receive it."""

    def flush(self) -> None:
        self.clear()

    def cycle_key(self) -> None:
        pass


def signed_in_user(session_key: str | None) -> AbstractBaseUser | AnonymousUser:
    """Who the session signs in now, as Django's `get_user` decides for a request: nobody
    once it is gone or expired, its password changed, or its user deactivated."""
    if session_key is None:
        return AnonymousUser()
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return auth.get_user(SimpleNamespace(session=_SessionRead(session.items())))


def user_still_signed_in(access: SocketAccess) -> AbstractBaseUser:
    """The socket's user as its session signs them in now; AccessRevoked(4401) if it no
    longer does."""
    user = signed_in_user(access.session_key)
    if not user.is_authenticated or user.pk != access.user_id:
        raise AccessRevoked(CLOSE_UNAUTHENTICATED)
    return user


def access_verdicts(accesses: Iterable[SocketAccess]) -> dict[SocketAccess, int]:
    """The close code of each access that no longer holds (4401 or 4403); those that
    hold are left out. Sockets of one session cost one sign-in, one read of runs and one
    of experiments (each only if one of them shows any)."""
    by_session: dict[tuple[str | None, int], list[SocketAccess]] = defaultdict(list)
    for access in accesses:
        by_session[access.session_key, access.user_id].append(access)
    verdicts = {}
    for group in by_session.values():
        try:
            user = user_still_signed_in(group[0])
        except AccessRevoked as revoked:
            verdicts.update(dict.fromkeys(group, revoked.code))
            continue
        runs = _visible_ids(selectors.runs_visible_to(user), group, "run_ids")
        shown = _visible_ids(experiments.experiments_visible_to(user), group, "experiment_ids")
        for access in group:
            if not (runs.issuperset(access.run_ids) and shown.issuperset(access.experiment_ids)):
                verdicts[access] = CLOSE_FORBIDDEN
    return verdicts


def _visible_ids(visible: QuerySet, accesses: list[SocketAccess], ids: str) -> set[int]:
    """Which of the rows that the accesses show (their `ids` field) are in `visible`."""
    wanted = {pk for access in accesses for pk in getattr(access, ids)}
    if not wanted:
        return set()
    return set(visible.filter(pk__in=wanted).values_list("pk", flat=True))


class AccessWatch:
    """This process's open sockets, checked again every ACCESS_RECHECK_SECONDS, all in
    one database hop; a socket whose viewer lost access is closed."""

    def __init__(self) -> None:
        self.sockets: dict[StreamConsumer, SocketAccess] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def watch(self, socket: StreamConsumer, access: SocketAccess) -> None:
        """Check the socket's access from now on."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): the old task is gone
            self.sockets, self._loop, self._task = {}, loop, None
        self.sockets[socket] = access
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._watch_while_open(), name="access-watch")

    def forget(self, socket: StreamConsumer) -> None:
        """The socket closed (again is harmless)."""
        self.sockets.pop(socket, None)

    async def _watch_while_open(self) -> None:
        while self.sockets:
            await asyncio.sleep(ACCESS_RECHECK_SECONDS)
            watched = dict(self.sockets)
            try:
                verdicts = await crowd.database.call(access_verdicts, set(watched.values()))
            except Exception:  # the database is away: every socket stays, checked next time
                log.exception("could not check the open sockets' access")
                continue
            for socket, access in watched.items():
                code = verdicts.get(access)
                if code is not None and socket in self.sockets:
                    try:
                        await socket.shut(code)
                    except Exception:  # one broken socket must not keep the others open
                        log.exception("could not close a socket whose viewer lost access")


access_watch = AccessWatch()


class CommandBudget:
    """At most `rate` commands a second, in bursts of up to `rate`: a token bucket."""

    def __init__(self, rate: int = MAX_COMMANDS_PER_SECOND) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.at = time.monotonic()

    def take(self, now: float) -> bool:
        """Whether one more command may be done at monotonic time `now`."""
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class StreamConsumer(AsyncWebsocketConsumer):
    """What the run, play and experiment consumers share: admission, the live stream from
    the hub, access checked again while open, and errors.

    The hub hands this process's viewers each published message (see visualizer/hub.py).
    Under daphne it goes straight to the socket, framed once for all viewers
    (visualizer/socket_writer.py); elsewhere through the ASGI `send`. What arrives before
    the snapshot is sent is held for after it, and a reader that falls behind is skipped
    boards, then closed (visualizer/delivery.py). Control events are dispatched to the
    handler named after their kind.
    """

    # Everything a socket gets comes through the hub, none through Channels' layer: an alias
    # that names no layer (get_channel_layer answers None) spares each socket a Redis
    # subscription, and a socket that opens just after Redis restarted a stale connection.
    channel_layer_alias = "none: the live stream goes through visualizer.hub"
    stream_group: str | None = None
    stream: ViewerStream | None = None
    overlay = False  # whether this socket's frames carry the policy's options
    access: SocketAccess | None = None  # set once the socket is let in
    shutting = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.socket_id = uuid.uuid4().hex
        self.commands = CommandBudget()
        self.pace = ReaderPace()

    async def admit(
        self, run_ids: tuple[int, ...], *, experiment_ids: tuple[int, ...] = ()
    ) -> bool:
        """Accept the socket, and let it in if someone is signed in and has a socket to
        spare; else close it (4401, 4429) and answer False. Access to the runs and
        experiments it shows is checked from `watch_access` on."""
        # Accept before any close: a close before accept is a bare HTTP 403, and the
        # browser could not tell "sign in again" from "server down".
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        limit = settings.MAX_SOCKETS_PER_USER
        if limit and await self._past_the_cap(user, limit):
            await self.end_socket()
            await self.send_error(
                f"too many live views open: at most {limit} per user; close one and reload"
            )
            await self.close(code=CLOSE_TOO_MANY)
            return False
        session = self.scope.get("session")
        session_key = session.session_key if session is not None else None
        self.access = SocketAccess(session_key, user.pk, run_ids, experiment_ids)
        return True

    async def _past_the_cap(self, user: AbstractBaseUser, limit: int) -> bool:
        open_now = await hub.count_socket(f"user:{user.pk}", self.socket_id)
        return open_now is not None and open_now > limit  # None: Redis cannot tell

    def watch_access(self) -> None:
        """Check again, while the socket is open, that its viewer may still watch."""
        access_watch.watch(self, self.access)

    async def shut(self, code: int) -> None:
        """Close the socket with `code`, and stop sending it anything at once."""
        if self.shutting:
            return
        self.shutting = True
        await self.end_socket()
        await self.close(code=code)

    async def end_socket(self) -> None:
        """Stop streaming, checking and counting this socket (again is harmless)."""
        access_watch.forget(self)
        await self.leave_stream()
        await hub.uncount_socket(self.socket_id)

    async def access_changed(self) -> None:
        """Control event: the visibility of what it shows changed. Close the socket if this
        viewer lost access."""
        if self.access is None:
            return
        verdicts = await crowd.database.call(access_verdicts, [self.access])
        if self.access in verdicts:
            await self.shut(verdicts[self.access])

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
        if writer is not None:
            pace = self.pace.pace(message, writer.backlog(), time.monotonic())
            if pace is Pace.SKIP:
                return
            if pace is Pace.CLOSE:
                log.info("closed a live socket whose reader fell too far behind")
                await self.shut(CLOSE_TOO_SLOW)
                return
            if writer.write(message):
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
            await self.end_socket()
            raise

    async def websocket_receive(self, message: dict) -> None:
        if not self.commands.take(time.monotonic()):
            await self.send_error(
                f"too many commands: at most {MAX_COMMANDS_PER_SECOND} a second; "
                "this one was ignored"
            )
            return
        await super().websocket_receive(message)

    async def websocket_disconnect(self, message: dict) -> None:
        await self.end_socket()
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
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if not await self.admit((self.run_id,)):
            return
        # Join before reading the snapshot: whatever is published meanwhile is held for
        # this consumer and relayed after it (the page ignores points it already has). A
        # viewer who may not see the run is closed before anything held is sent.
        await self.start_stream(run_group(self.run_id))
        run = await crowd.database.call(self._run_for_snapshot)
        if run is None:
            await self.shut(CLOSE_FORBIDDEN)
            return
        self.watch_access()
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
        try:
            error = await self._command(command)
        except AccessRevoked as revoked:
            await self.shut(revoked.code)
            return
        if error:
            await self.send_error(error)

    @database_sync_to_async
    def _command(self, command: str) -> str | None:
        # The user as the session signs them in now, not as they were at connect.
        user = user_still_signed_in(self.access)
        try:
            run = selectors.run_for_viewer(user, self.run_id)
        except selectors.RunNotFound:
            raise AccessRevoked(CLOSE_FORBIDDEN) from None
        try:
            if command == "stop":
                services.run_stop(run=run, user=user)
            else:
                services.run_start_or_resume(run=run, user=user)
        except (
            selectors.NotAllowed,
            InvalidTransition,
            services.LimitReached,
            queues.QueueUnavailable,
        ) as error:
            return str(error)
        return None


class ExperimentConsumer(StreamConsumer):
    """Streams an experiment's statistics to one viewer, each time the scheduler stores
    them; takes no commands (the page stops an experiment with a form)."""

    async def connect(self) -> None:
        self.experiment_id = int(self.scope["url_route"]["kwargs"]["experiment_id"])
        if not await self.admit((), experiment_ids=(self.experiment_id,)):
            return
        # Join before reading the snapshot, as RunConsumer does: an update published
        # meanwhile is sent after the snapshot, so the page ends on the newest figures.
        await self.start_stream(experiment_group(self.experiment_id))
        figures = await crowd.database.call(self._figures_for_snapshot)
        if figures is None:
            await self.shut(CLOSE_FORBIDDEN)
            return
        self.watch_access()
        await self.send(text_data=snapshot_json({"experiment": figures}))
        await self.release()

    def _figures_for_snapshot(self) -> dict | None:
        try:
            experiment = experiments.experiment_for_viewer(self.scope["user"], self.experiment_id)
        except experiments.ExperimentNotFound:
            return None
        return experiment_figures(experiment)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send_error(
            "an experiment's stream takes no commands; stop it with the page's Stop button "
            "or POST /api/experiments/<id>/stop"
        )


PLAY_COMMANDS = ("speed", "pause", "resume", "step", "restart", "overlay")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class PlayConsumer(StreamConsumer):
    """Streams one play's frames and status to its viewer; takes speed, pause, step, restart.

    While the socket is open the consumer keeps the viewer's presence fresh in Redis: the
    play's task ends once no viewer is left.
    """

    async def connect(self) -> None:
        self.token = self.scope["url_route"]["kwargs"]["token"]
        if not await self.admit(()):
            return
        spec = await self._spec()
        if spec is None:
            await self.shut(CLOSE_FORBIDDEN)
            return
        # A side-by-side play also watches its second run.
        rival_run = spec.rival and spec.rival.get("run_id")
        run_ids = tuple(r for r in (spec.run_id, rival_run) if r is not None)
        self.access = dataclasses.replace(self.access, run_ids=run_ids)
        self.redis = plays.async_client()
        # Join first, as RunConsumer does; a run's plays also hear when it goes private.
        await self.start_stream(play_group(self.token))
        self.run_plays = [run_plays_group(run_id) for run_id in run_ids]
        for group in self.run_plays:
            await hub.join(group, self)
        try:
            await plays.viewer_seen(self.redis, self.token, self.socket_id)
            await self._join()
            status = await plays.last_status(self.redis, self.token)
        except services.LimitReached as error:
            await self.send_error(str(error))
            await self.shut(CLOSE_TOO_MANY)
            return
        except (redis.RedisError, plays.PlayNotFound, queues.QueueUnavailable):
            await self.shut(CLOSE_FORBIDDEN)
            return
        self.watch_access()
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
                await plays.viewer_gone(self.redis, self.token, self.socket_id)
            await self.redis.aclose()

    async def _keep_watching(self) -> None:
        while True:
            await asyncio.sleep(plays.VIEWER_REFRESH_SECONDS)
            with contextlib.suppress(redis.RedisError):
                await plays.viewer_seen(self.redis, self.token, self.socket_id)

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
        # The user as the session signs them in now, and the play's runs as they are now.
        verdicts = await crowd.database.call(access_verdicts, [self.access])
        if self.access in verdicts:
            await self.shut(verdicts[self.access])
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
