"""The only bridge from worker processes to browsers: group names, payloads, sending.

A worker publishes on one long-lived event loop, run by a daemon thread in its own
process, so it keeps one Redis connection. `async_to_sync(group_send)` per message would
open a new connection on every call (measured at 6x the cost). Each message is encoded
once and PUBLISHed once on its group's stream channel, where every web process's hub
(visualizer/hub.py) reads it once for all its viewers; control events for the consumers
(a run going private) go over the Channels group instead. Publishing never blocks the
caller: when Redis is slow or down, messages are dropped.
"""

import asyncio
import json
import logging
import os
import re
import threading
from concurrent.futures import Future

import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from django.conf import settings

from visualizer.hub import stream_channel

log = logging.getLogger(__name__)

# Messages in flight before new ones are dropped: a stalled Redis must not grow memory.
MAX_PENDING = 64
SEND_TIMEOUT_SECONDS = 2.0
# The last frame of a run outlives the run briefly, so a late viewer still sees the board.
LAST_FRAME_TTL_SECONDS = 600


def run_group(run_id: int) -> str:
    """The Channels group that every viewer of a run joins."""
    return f"run.{run_id}"


def run_plays_group(run_id: int) -> str:
    """The Channels group of everyone watching one of a run's checkpoints play."""
    return f"run.{run_id}.plays"


def last_frame_key(group: str) -> str:
    """The Redis key that holds a group's latest encoded frame."""
    return f"tetris:last-frame:{group}"


def encode(kind: str, payload: dict) -> str:
    """Encode a server-to-client WebSocket message once, for every viewer."""
    return json.dumps({"type": kind, **payload}, separators=(",", ":"))


# How `encode` begins every frame: the publishers put `seq` and `t` first.
_FRAME_HEAD = re.compile(r'\{"type":"frame","seq":\d+,"t":([0-9.eE+-]+)[,}]')


def frame_time(text: str) -> float | None:
    """When an encoded frame was published (its `t`), without decoding it; None if it is
    not a frame."""
    head = _FRAME_HEAD.match(text)
    return float(head[1]) if head else None


class Bridge:
    """A per-process event loop thread that owns the channel layer's connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0
        self._redis: aioredis.Redis | None = None
        self.dropped = 0

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        # After a fork (Celery prefork) the parent's thread is gone: start a new one.
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="channels-bridge", daemon=True
                )
                thread.start()
                self._loop, self._pid, self._pending, self._redis = loop, os.getpid(), 0, None
            return self._loop

    def send(self, group: str, text: str, *, remember: bool = False) -> Future | None:
        """Queue a pre-encoded message for a group; returns None when it was dropped.

        With `remember`, the message is also kept in Redis as the group's last frame.
        """
        loop = self._ensure_loop()
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.dropped += 1
                return None
            self._pending += 1
        future = asyncio.run_coroutine_threadsafe(self._group_send(group, text, remember), loop)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending -= 1
        if future.cancelled() or future.exception() is not None:
            self.dropped += 1

    def send_event(self, group: str, event: dict) -> Future:
        """Queue a channel-layer event for the group's consumers (not for the browser)."""
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(self._send_event(group, event), loop)

    async def _send_event(self, group: str, event: dict) -> None:
        await asyncio.wait_for(get_channel_layer().group_send(group, event), SEND_TIMEOUT_SECONDS)

    async def _group_send(self, group: str, text: str, remember: bool) -> None:
        try:
            if self._redis is None:
                self._redis = aioredis.Redis.from_url(
                    settings.REDIS_URL, socket_timeout=SEND_TIMEOUT_SECONDS
                )
            # One round trip: the last frame, then the message to every web process's hub.
            # Stored first, so a frame that reached a hub is already what `last_frame_text`
            # reads (a new viewer's snapshot supersedes the boards held for it).
            async with self._redis.pipeline(transaction=False) as pipe:
                if remember:
                    pipe.set(last_frame_key(group), text, ex=LAST_FRAME_TTL_SECONDS)
                pipe.publish(stream_channel(group), text)
                await asyncio.wait_for(pipe.execute(), SEND_TIMEOUT_SECONDS)
        except Exception as exc:  # any Redis failure: drop the message, keep training
            log.warning("dropped a message for %s: %s", group, exc)
            raise


_bridge = Bridge()


def publish(group: str, kind: str, payload: dict) -> Future | None:
    """Send one message of `kind` to every viewer in `group`, without blocking."""
    return _bridge.send(group, encode(kind, payload))


def publish_frame(group: str, payload: dict) -> Future | None:
    """Send a board frame to the group and keep it as the group's last frame."""
    return _bridge.send(group, encode("frame", payload), remember=True)


def publish_access_changed(group: str) -> Future:
    """Tell the group's consumers to re-check their viewer's access (a run went private)."""
    return _bridge.send_event(group, {"type": "access.changed"})


_frame_reader: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = None


def _frame_reader_client() -> aioredis.Redis:
    # One client (and connection pool) per event loop: a snapshot costs one GET, not a
    # new connection (300 viewers open a run at once in the fan-out benchmark).
    global _frame_reader
    loop = asyncio.get_running_loop()
    if _frame_reader is None or _frame_reader[0] is not loop:
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=SEND_TIMEOUT_SECONDS)
        _frame_reader = (loop, client)
    return _frame_reader[1]


async def last_frame_text(group: str) -> str | None:
    """The group's last frame as sent (None if none or Redis is down)."""
    try:
        text = await _frame_reader_client().get(last_frame_key(group))
    except (aioredis.RedisError, OSError):
        return None
    return text.decode() if text else None
