"""The only way from a worker process to the browsers: publish a message to a group.

A worker publishes on one long-lived event loop, run by a daemon thread in its own
process, so it keeps one Redis connection; `async_to_sync(group_send)` per message would
open a new connection on every call (measured at 6x the cost). Each message is encoded
once and PUBLISHed once, in its envelope, on its group's stream channel, where every web
process's hub (visualizer/hub.py) reads it once for all its viewers. Control events (a
run going private) take the same way. Publishing never blocks the caller: when Redis is
slow or down, messages are dropped.

The Redis URL comes from `configure`, which the Django app calls at start-up (any other
host of the bridge calls it too); the bridge imports no framework.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import redis.asyncio as aioredis

from live.names import last_frame_key, overlay_key, stream_channel
from live.protocol import AccessChanged, Envelope, Frame, Message

log = logging.getLogger(__name__)

# Messages in flight before new ones are dropped: a stalled Redis must not grow memory.
MAX_PENDING = 64
SEND_TIMEOUT_SECONDS = 2.0
# The last frame of a group outlives its run briefly, so a late viewer still sees the board.
LAST_FRAME_TTL_SECONDS = 600
# How stale the answer to "does anyone have the overlay on?" may be.
OPTIONS_POLL_SECONDS = 1.0


class Bridge:
    """A per-process event loop thread that owns the Redis connection to the stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0
        self._redis: aioredis.Redis | None = None
        self.redis_url: Callable[[], str] = lambda: os.environ.get(
            "REDIS_URL", "redis://localhost:6379/0"
        )
        self.dropped = 0
        self._wanted: dict[str, tuple[float, bool]] = {}  # group -> (asked at, answer)
        self._asking: set[str] = set()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        # After a fork (Celery prefork) the parent's thread is gone: start a new one.
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="live-bridge", daemon=True)
                thread.start()
                self._loop, self._pid, self._pending, self._redis = loop, os.getpid(), 0, None
                self._order = asyncio.Lock()
                self._wanted, self._asking = {}, set()
            return self._loop

    def send(self, group: str, envelope: Envelope, *, remember: bool = False) -> Future | None:
        """Queue a message for a group; returns None when it was dropped.

        With `remember`, the message is also kept in Redis as the group's last frame.
        """
        loop = self._ensure_loop()
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.dropped += 1
                return None
            self._pending += 1
        coroutine = self._publish(group, envelope.to_bytes(), remember)
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending -= 1
        if future.cancelled() or future.exception() is not None:
            self.dropped += 1

    async def _publish(self, group: str, data: bytes, remember: bool) -> None:
        # One message at a time, in the order they were queued: concurrent pipelines on
        # pooled connections can reach Redis out of order (one waits for a new connection
        # while the next takes an idle one), and a viewer would see an older board after a
        # newer one. asyncio's lock hands itself over first come, first served.
        async with self._order:
            await self._publish_now(group, data, remember)

    def options_wanted(self, group: str) -> bool:
        """Whether a viewer of the group has the overlay on, as Redis said at most about a
        second ago. Never waits: a stale answer is returned while a fresh one is asked for."""
        asked_at, wanted = self._wanted.get(group, (-OPTIONS_POLL_SECONDS, False))
        if time.monotonic() - asked_at >= OPTIONS_POLL_SECONDS:
            loop = self._ensure_loop()
            with self._lock:
                if group in self._asking:
                    return wanted
                self._asking.add(group)
            asyncio.run_coroutine_threadsafe(self._ask_options(group), loop)
        return wanted

    async def _ask_options(self, group: str) -> None:
        try:
            exists = await asyncio.wait_for(
                self._client().exists(overlay_key(group)), SEND_TIMEOUT_SECONDS
            )
            self._wanted[group] = (time.monotonic(), bool(exists))
        except Exception as exc:  # Redis slow or down: no overlay, ask again later
            self._wanted[group] = (time.monotonic(), False)
            log.debug("could not ask whether %s wants options: %s", group, exc)
        finally:
            with self._lock:
                self._asking.discard(group)

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self.redis_url(), socket_timeout=SEND_TIMEOUT_SECONDS
            )
        return self._redis

    async def _publish_now(self, group: str, data: bytes, remember: bool) -> None:
        try:
            # One round trip: the last frame, then the message to every web process's hub.
            # Stored first, so a frame that reached a hub is already what a new viewer's
            # snapshot reads (its board supersedes the ones held for that viewer).
            async with self._client().pipeline(transaction=False) as pipe:
                if remember:
                    pipe.set(last_frame_key(group), data, ex=LAST_FRAME_TTL_SECONDS)
                pipe.publish(stream_channel(group), data)
                await asyncio.wait_for(pipe.execute(), SEND_TIMEOUT_SECONDS)
        except Exception as exc:  # any Redis failure: drop the message, keep training
            log.warning("dropped a message for %s: %s", group, exc)
            raise


_bridge = Bridge()


Sink = Callable[[str, Envelope], None]
_sink: Sink | None = None


def configure(*, redis_url: Callable[[], str] | None = None, sink: Sink | None = None) -> None:
    """Where to publish: Redis at `redis_url()` (read when the bridge connects), or, for
    tests without a server, a `sink(group, envelope)` that takes each message instead
    (`configure(sink=None)` goes back to Redis)."""
    global _sink
    if redis_url is not None:
        _bridge.redis_url = redis_url
    _sink = sink


def publish(group: str, message: Message) -> Future | None:
    """Send a message to every viewer in `group`, without blocking; a Frame is also kept as
    the group's last frame. None when it was dropped."""
    is_frame = isinstance(message, Frame)
    envelope = Envelope.of(message, message.t if is_frame else None)
    if _sink is not None:
        _sink(group, envelope)
        done: Future = Future()
        done.set_result(None)
        return done
    return _bridge.send(group, envelope, remember=is_frame)


def publish_access_changed(group: str) -> Future | None:
    """Tell the group's consumers to re-check their viewer's access (a run went private)."""
    return publish(group, AccessChanged())


def options_wanted(group: str) -> bool:
    """Whether a viewer of `group` has the overlay on: the frames are to carry the policy's
    options. Answers at once (from at most about a second ago); False without Redis."""
    if _sink is not None:
        return False
    return _bridge.options_wanted(group)


def dropped() -> int:
    """Messages this process dropped so far (Redis slow or down)."""
    return _bridge.dropped
