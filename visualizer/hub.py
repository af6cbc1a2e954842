"""The web side of the live stream: one Redis subscription per web process.

The bridge (live/bridge.py) PUBLISHes each message once, in its envelope, on the Redis
channel of its group. Each web process subscribes once to the groups that its sockets
watch, reads every message once, and hands the same envelope to each of its viewers of
that group (which frame it once for all of them, visualizer/socket_writer.py). The
Channels consumer pattern would instead queue, wake, decode and dispatch every message
once per viewer: 26 us of CPU per viewer per message against 1.5 us here, measured with
300 viewers (docs/BENCHMARKS.md, "Live viewers"). Control events, such as a run going
private, come the same way, for the consumers to act on.

When Redis goes away the hub keeps its viewers and subscribes again once Redis is back;
what was published meanwhile is lost, as frames are latest-only anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import redis.asyncio as aioredis
from django.conf import settings

from live.names import IDLE_CHANNEL, last_frame_key, stream_channel
from live.protocol import Envelope

log = logging.getLogger(__name__)

RECONNECT_DELAYS_S = (0.25, 0.5, 1.0, 2.0, 4.0)
READ_TIMEOUT_SECONDS = 2.0


class Viewer(Protocol):
    """What the hub hands messages to: one WebSocket consumer."""

    async def relay(self, message: Envelope) -> None: ...


class Hub:
    """This process's viewers by group, and the one subscription that feeds them."""

    def __init__(self) -> None:
        self.viewers: dict[str, dict[Viewer, None]] = {}  # channel -> viewers, in join order
        self.relayed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task | None = None
        self._pubsub: aioredis.client.PubSub | None = None

    def _ensure_reader(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one works
            self.viewers, self._loop, self._reader, self._pubsub = {}, loop, None, None
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_forever(), name="stream-hub")

    async def join(self, group: str, viewer: Viewer) -> None:
        """Start handing the group's messages to `viewer`."""
        self._ensure_reader()
        channel = stream_channel(group)
        first = channel not in self.viewers
        self.viewers.setdefault(channel, {})[viewer] = None
        if first and self._pubsub is not None:
            try:
                await self._pubsub.subscribe(channel)
            except (aioredis.RedisError, OSError) as error:
                # The reader notices the broken connection and subscribes again to every
                # channel that has viewers then, this one included.
                log.warning("could not subscribe to %s yet: %s", channel, error)

    async def leave(self, group: str, viewer: Viewer) -> None:
        """Stop handing the group's messages to `viewer`."""
        channel = stream_channel(group)
        viewers = self.viewers.get(channel, {})
        viewers.pop(viewer, None)
        if not viewers and self.viewers.pop(channel, None) is not None and self._pubsub:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def _read_forever(self) -> None:
        failures = 0
        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                channels = list(self.viewers)
                await pubsub.subscribe(IDLE_CHANNEL, *channels)
                self._pubsub = pubsub  # from now on, joins subscribe by themselves
                if joined_meanwhile := [c for c in self.viewers if c not in channels]:
                    await pubsub.subscribe(*joined_meanwhile)
                if failures:
                    log.info("stream hub subscribed again after %d failed attempts", failures)
                failures = 0
                async for message in pubsub.listen():
                    await self._relay(message["channel"].decode(), message["data"])
            except (aioredis.RedisError, OSError) as error:
                delay = RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)]
                if not failures:
                    log.warning("stream hub lost Redis (%s); subscribing again", error)
                failures += 1
                await asyncio.sleep(delay)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()

    async def _relay(self, channel: str, data: bytes) -> None:
        try:
            message = Envelope.from_bytes(data)
        except ValueError:  # not from our bridge (UnicodeDecodeError included): skip it
            log.warning("skipped a message on %s that is not an envelope", channel)
            return
        for viewer in list(self.viewers.get(channel, ())):
            try:
                await viewer.relay(message)
            except Exception:  # one broken socket must not starve the others
                log.exception("could not relay a message to a viewer")
        self.relayed += 1


hub = Hub()


_frame_reader: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = None


def _frame_reader_client() -> aioredis.Redis:
    # One client (and connection pool) per event loop: a snapshot costs one GET, not a
    # new connection (300 viewers open a run at once in the fan-out benchmark).
    global _frame_reader
    loop = asyncio.get_running_loop()
    if _frame_reader is None or _frame_reader[0] is not loop:
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=READ_TIMEOUT_SECONDS)
        _frame_reader = (loop, client)
    return _frame_reader[1]


async def last_frame(group: str) -> Envelope | None:
    """The group's last frame as published (None if none, or Redis is down)."""
    try:
        data = await _frame_reader_client().get(last_frame_key(group))
        return Envelope.from_bytes(data) if data else None
    except (aioredis.RedisError, OSError, ValueError):
        return None
